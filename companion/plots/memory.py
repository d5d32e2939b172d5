"""The didactic figures of the first chapters: what one eigenvalue remembers, how attention's
normaliser telescopes, a spectrum in the complex plane."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from companion import style as S
from companion.plots.common import _panels
from companion.spectra import (
    MAGNITUDE_BINS,
    MAGNITUDE_EDGES,
    PHASE_BINS,
    PHASE_EDGES,
    bin_index,
)


def impulse_response(
    lams: tuple[float, ...] = (0.05, 0.3, 0.7, 0.97, 1.0, 1.1, 1.25),
    phases: tuple[float, ...] = (5.0, 30.0, 90.0),
    radius: float = 0.95,
    steps: int = 40,
) -> Figure:
    """What one eigenvalue does to a state: ``h_t = λ^t`` after a unit input at ``t = 0``.
    Left: ``|h_t|`` for real ``λ`` in its magnitude bin's colour (dashed when a bin repeats):
    below 1 it decays, at 1 it stays, above 1 it grows. Right: ``Re h_t`` for
    ``λ = radius·e^{iθ}``: the phase makes the memory oscillate (phase bin colours)."""
    t = np.arange(steps + 1)
    fig, (left, right) = _panels(2, ncols=2, height=2.6)
    mag_bins = bin_index(torch.tensor(lams, dtype=torch.float64), MAGNITUDE_EDGES).tolist()
    for i, (lam, b) in enumerate(zip(lams, mag_bins, strict=True)):
        name = MAGNITUDE_BINS[b]
        left.plot(
            t,
            np.abs(lam) ** t,
            color=S.BIN_COLORS["magnitude"][name],
            ls="--" if b in mag_bins[:i] else "-",
            lw=1.5,
            label=f"λ = {lam:g}  {name}",
        )
    left.set_yscale("log")
    left.set_ylim(1e-4, 1e5)
    left.set(
        xlabel="steps after the input", ylabel=r"$|h_t|$", title="magnitude: forget, keep, grow"
    )
    left.legend(fontsize=7.5, loc="upper left", ncol=2)
    phase_bins = bin_index(torch.tensor(phases, dtype=torch.float64), PHASE_EDGES).tolist()
    for theta, b in zip(phases, phase_bins, strict=True):
        lam = radius * np.exp(1j * np.deg2rad(theta))
        right.plot(
            t,
            (lam**t).real,
            color=S.BIN_COLORS["phase"][PHASE_BINS[b]],
            lw=1.5,
            label=rf"$\lambda = {radius:g}\,e^{{i\,{theta:g}°}}$  {PHASE_BINS[b]}",
        )
    right.plot(t, radius**t, color="0.4", lw=0.8, ls="--", label=rf"envelope ${radius:g}^t$")
    right.set(
        xlabel="steps after the input",
        ylabel=r"$\mathrm{Re}\,h_t$",
        title="phase: memory oscillates",
    )
    right.set_ylim(-1.05, 1.6)
    right.legend(fontsize=7.5, loc="upper right", ncol=2)
    return fig


def softmax_normalizer(steps: int = 24, d: int = 8, seed: int = 0) -> np.ndarray:
    """``η_i = Σ_{j≤i} exp(q_i·k_j/√d)`` of one softmax head on random queries and keys."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, steps, d))
    scores = np.where(np.tri(steps, dtype=bool), q @ k.T / np.sqrt(d), -np.inf)
    return np.exp(scores).sum(1)


def telescoping(eta: np.ndarray | None = None) -> Figure:
    """Attention as a recurrence: ``Λ_i = η_{i-1}/η_i`` (left, coloured by magnitude bin) and the
    products ``Π_{k=j+1..i} Λ_k`` built from them (right, log10), which equal ``η_j/η_i``: the
    weight that the state at step ``i`` still gives to step ``j``. ``eta``: normalisers
    ``η_1..η_L`` (default: :func:`softmax_normalizer`)."""
    eta = softmax_normalizer() if eta is None else np.asarray(eta, dtype=np.float64)
    lam = eta[:-1] / eta[1:]  # Λ_2..Λ_L
    log_c = np.r_[0.0, np.cumsum(np.log(lam))]  # log Π_{k=2..i} Λ_k
    products = np.exp(log_c[:, None] - log_c[None, :])  # [i, j] = Π_{k=j+1..i} Λ_k
    products[np.triu_indices(len(eta), 1)] = np.nan
    exact = eta[None, :] / eta[:, None]
    error = np.nanmax(np.abs(products / exact - 1))
    fig, (left, right) = _panels(2, ncols=2, height=2.6)
    i = np.arange(2, len(eta) + 1)
    colors = [
        S.BIN_COLORS["magnitude"][MAGNITUDE_BINS[b]]
        for b in bin_index(torch.from_numpy(lam), MAGNITUDE_EDGES).tolist()
    ]
    left.axhline(1.0, color="0.5", lw=0.6, ls="--")
    left.scatter(i, lam, c=colors, s=18, edgecolors="0.2", linewidths=0.3, zorder=3)
    left.set(
        xlabel="step i", ylabel=r"$\Lambda_i = \eta_{i-1}/\eta_i$", title="one eigenvalue per step"
    )
    image = right.imshow(
        np.log10(products),
        cmap="mako",
        origin="upper",
        extent=(0.5, len(eta) + 0.5, len(eta) + 0.5, 0.5),
    )
    fig.colorbar(image, ax=right, label=r"$\log_{10}\, \Pi_{k=j+1}^{i} \Lambda_k$")
    right.set(
        xlabel="input step j",
        ylabel="state step i",
        title=rf"$\Pi_{{k=j+1}}^{{i}} \Lambda_k = \eta_j/\eta_i$ (max. rel. error {error:.0e})",
    )
    right.grid(False)
    return fig


def complex_spectra(values: dict[str, np.ndarray], title: str) -> Figure:
    """Eigenvalues in the complex plane, one marker per series (``values``: name -> complex
    array), with the unit circle and the magnitude-bin circles 0.5 and 0.9; right, their
    magnitudes sorted, against the same bin edges."""
    fig, (plane, sorted_ax) = _panels(2, ncols=2, height=2.8)
    arc = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    for r in (0.5, 0.9, 1.0):
        plane.plot((r * arc).real, (r * arc).imag, color="0.6", lw=0.6, ls="-" if r == 1 else ":")
        sorted_ax.axhline(r, color="0.6", lw=0.6, ls="-" if r == 1 else ":")
    markers = ("o", "x", "+", "s")
    for (name, z), marker in zip(values.items(), markers, strict=False):
        z = np.asarray(z)
        plane.scatter(z.real, z.imag, s=12, marker=marker, lw=0.8, label=name)
        sorted_ax.plot(np.sort(np.abs(z)), marker=marker, ms=3, lw=0.6, label=name)
    plane.set(xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$", aspect="equal", title="complex plane")
    sorted_ax.set(xlabel="mode (sorted)", ylabel=r"$|\lambda|$", title="magnitudes, sorted")
    plane.legend(fontsize=7.5, loc="lower left")
    fig.suptitle(title, fontsize=9)
    return fig
