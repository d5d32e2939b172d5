"""The book's visual language: display names, colours, marks and orders, and the theme.

Every figure and table names models and tasks through this module, so that a model has one
name and one colour wherever it appears:

* models (keyed by mixer) in the order of :data:`companion.layers.MIXERS`, each with the fixed
  colour-blind-safe colour (:data:`MODEL_COLORS`) and display name (:data:`MODEL_NAMES`) its
  class declares (``color``, ``label``); a run of an ablation is labelled
  ``"<model> · <variant>"`` (:func:`run_label`);
* tasks in the order of :data:`companion.tasks.TASKS`, with the name and scatter marker each
  task class declares (``label``, ``marker``);
* the 7 magnitude bins of ``spectra.MAGNITUDE_BINS`` in two ColorBrewer sequential ramps that
  meet at ``|λ| = 1``: blues that darken as memory lengthens, from pale ``[0,0.1]`` (forgets) to
  the darkest ``(0.9,1]`` (remembers), then orange to dark red for the bins that amplify
  (``YlOrRd``); phase bins in viridis (purple to green, no yellow);
* the verdicts of the claims in their own colours (:data:`VERDICT_COLORS`).

The palettes are written out as hex codes, so that naming a model needs no plotting library;
:func:`use_style` sets the theme of the figures (:mod:`companion.plots`).
"""

from __future__ import annotations

import pandas as pd

from companion.decision import VERDICTS
from companion.layers import MIXERS, REGISTRY, mixer_key
from companion.spectra import MAGNITUDE_BINS, PHASE_BINS
from companion.tasks import REGISTRY as TASK_REGISTRY
from companion.tasks import TASKS

PAGE_WIDTH = 7.0  # inches: the text width of a book page
MODEL_ORDER: tuple[str, ...] = MIXERS
model_key = mixer_key  # sort key of the book's model order
MODEL_NAMES = {name: cls.label for name, cls in REGISTRY.items() if name in MIXERS}
MODEL_COLORS = {name: cls.color for name, cls in REGISTRY.items() if name in MIXERS}
TASK_ORDER: tuple[str, ...] = TASKS
TASK_NAMES = {name: cls.label for name, cls in TASK_REGISTRY.items()}
TASK_MARKERS = {name: cls.marker for name, cls in TASK_REGISTRY.items()}
BINS = {"magnitude": MAGNITUDE_BINS, "phase": PHASE_BINS}
MAGNITUDE_COLORS = (
    "#c6dbef",  # forgets: pale, mid and deep blue of ColorBrewer's Blues, evenly spaced in
    "#6baed6",  # lightness so that the near-0 bins stay apart
    "#2171b5",
    "#08306b",  # remembers: the darkest blue of the same ramp
    "#feab49",  # amplifies: every other step of YlOrRd from its fourth, orange to dark red
    "#fc5b2e",
    "#d41020",
)
PHASE_COLORS = ("#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d")  # viridis, 5 of 6
BIN_COLORS = {
    "magnitude": dict(zip(MAGNITUDE_BINS, MAGNITUDE_COLORS, strict=True)),
    "phase": dict(zip(PHASE_BINS, PHASE_COLORS, strict=True)),
}
BIN_TITLE = {"magnitude": "|λ| bin", "phase": "phase bin (degrees)"}
SHARE = {"magnitude": "share of |λ|", "phase": "share of phases"}
STAGE_WORDS = {"init": "at initialisation", "final": "after training"}
# the claims' verdicts (companion.decision.VERDICTS, in its order): holds, does not hold,
# inconclusive, untestable at this scale, incomplete
VERDICT_COLORS = dict(
    zip(VERDICTS, ("#4daf4a", "#e41a1c", "#bdbdbd", "#fee8a0", "#ffffff"), strict=True)
)


def task_key(task: str) -> tuple:
    """Sort key of the book's task order; unknown tasks last, alphabetically."""
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), str(task))


def name(key) -> str:
    """Display name of a model (mixer) or task key; other values as they are."""
    return MODEL_NAMES.get(key) or TASK_NAMES.get(key) or str(key)


def run_label(mixer: str, variant: str = "", model: str | None = None) -> str:
    """Display name of a run: the mixer's name, with the variant unless the variant is what
    swapped the mixer (``model="mamba2", variant="lti"`` runs mixer ``mamba2_lti``)."""
    label = name(mixer)
    return f"{label} · {variant}" if variant and model in (None, mixer) else label


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``label`` column (from mixer, variant and model) and labels sorted in the
    book's model order (mixer order, then variant; main-grid runs first)."""
    variants = table["variant"] if "variant" in table else pd.Series("", table.index)
    models = table["model"] if "model" in table else pd.Series(None, table.index)
    names = [run_label(m, v, o) for m, v, o in zip(table["mixer"], variants, models, strict=True)]
    keys = [(model_key(m), v) for m, v in zip(table["mixer"], variants, strict=True)]
    order = [lab for _, lab in sorted(set(zip(keys, names, strict=True)))]
    out = table.assign(label=names)
    out["label"] = pd.Categorical(out["label"], categories=list(dict.fromkeys(order)), ordered=True)
    return out


def labels(table: pd.DataFrame) -> list[str]:
    """The labels of a :func:`labelled` table that have rows, in the book's order."""
    present = set(table["label"])
    return [lab for lab in table["label"].cat.categories if lab in present]


def label_colors(table: pd.DataFrame) -> dict[str, str]:
    """Colour of each label of a :func:`labelled` table: its mixer's fixed colour."""
    pairs = table[["label", "mixer"]].drop_duplicates()
    return {
        lab: MODEL_COLORS.get(m, "0.3") for lab, m in zip(pairs.label, pairs.mixer, strict=True)
    }


def use_style() -> None:
    """Set the book's seaborn theme: white grid, paper context, readable fonts, an opaque white
    background (legible in a dark page theme), and inline figures at twice their pixel size
    (sharp on high-density screens). Call it once per notebook."""
    import seaborn as sns
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    sns.set_theme(
        context="paper",
        style="whitegrid",
        font_scale=1.15,
        rc={
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "legend.fontsize": 8,
            "grid.linewidth": 0.5,
        },
    )
    set_matplotlib_formats("retina")
