"""Companion to *Task-Level Insights from Eigenvalues across Sequence Models* (arXiv:2510.09379)."""

__version__ = "0.1.0"
