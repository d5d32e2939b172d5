"""The figures of the book. Their names, colours and marks come from :mod:`companion.style`
(call ``style.use_style()`` once per notebook); their tables from :mod:`companion.evidence`:
``load_spectra`` (every run's ``spectra.csv`` with the run's identity, the long table most
figures take), ``load_histories`` (the learning curves) and ``load_values`` (the raw
eigenvalues of one step). The figures live in :mod:`~companion.plots.spectra`,
:mod:`~companion.plots.memory` and :mod:`~companion.plots.results`, on the helpers of
:mod:`~companion.plots.common`; every one is imported here. Conventions every figure keeps:

* bars, areas and legends list the bins in canonical order, in their colours;
* a model keeps its colour in every figure, and a run is named by ``style.run_label``;
* figures are ``style.PAGE_WIDTH`` inches wide and carry their provenance (profile, commit, run
  ids and config hashes) in small print at the bottom (:func:`provenance`,
  :func:`add_provenance`).
"""

from companion.plots.common import add_provenance, per_task, provenance, show
from companion.plots.memory import (
    complex_spectra,
    impulse_response,
    softmax_normalizer,
    telescoping,
)
from companion.plots.results import (
    correlation_plot,
    dial_figure,
    factor_figure,
    ladder_figure,
    learning_curves,
    summary_heatmap,
)
from companion.plots.spectra import (
    all_heads,
    bin_bars,
    bin_grid,
    exact_vs_published,
    init_vs_final,
    magnitude_distribution,
    spectra_over_training,
)

__all__ = [
    "add_provenance",
    "all_heads",
    "bin_bars",
    "bin_grid",
    "complex_spectra",
    "correlation_plot",
    "dial_figure",
    "exact_vs_published",
    "factor_figure",
    "impulse_response",
    "init_vs_final",
    "ladder_figure",
    "learning_curves",
    "magnitude_distribution",
    "per_task",
    "provenance",
    "show",
    "softmax_normalizer",
    "spectra_over_training",
    "summary_heatmap",
    "telescoping",
]
