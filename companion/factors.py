"""The two factors of attention's Λ in trained models: how much of ``Λ_i`` is the query change
and how much the retention (:func:`companion.spectra.attention_factors`), binned like Λ.

:func:`trained_model` rebuilds a run's model from its folder (``config.yaml`` and the last
``checkpoint.pt``, loaded with ``weights_only=True``) with the batch its spectra were read from;
:func:`factor_spectra` bins Λ and its two factors of every attention layer on that batch, from
the same forward pass as :func:`companion.spectra.collect`; :func:`table` does it for runs of an
index, and :func:`carriers` says which factor carries Λ's mass near 0 and above 1.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from companion import config as C
from companion.layers.base import Mixer, Transition
from companion.model import SequenceModel, build_model
from companion.runs import RunDir
from companion.spectra import FACTORS, MAGNITUDE_BINS, attention_factors, collect, summarize
from companion.train import ordered_batches


def trained_model(run_path: str | Path) -> tuple[SequenceModel, dict]:
    """The model of the run folder ``run_path`` at its last checkpoint, in eval mode, and the
    test batch its spectra are read from (the first ``train.analysis_examples`` examples)."""
    run = RunDir(run_path)
    saved = run.saved_config()
    if saved is None:
        raise run.damaged("config.yaml", "missing", f"delete the folder {run.path}")
    train = C.TrainConfig(**{**saved["train"], "betas": tuple(saved["train"]["betas"])})
    fields = ("task", "model_name", "profile", "seed", "variant", "data", "model", "overrides")
    config = C.RunConfig(**{k: saved[k] for k in fields}, train=train)
    task = C.task_of(config)
    model = build_model(C.model_config(config, task))
    model.load_state_dict(run.load("checkpoint.pt")["model"])
    n = train.analysis_examples
    return model.eval(), next(ordered_batches(task, "test", n, n))


def _view(which: int):
    """A :func:`companion.spectra.collect` view: factor ``which`` of an attention mixer's Λ."""

    def view(mixer: Mixer, u: torch.Tensor) -> Transition | None:
        try:
            values = attention_factors(mixer, u)[which]
        except ValueError:  # not an attention mixer with a summed normaliser
            return None
        return Transition(values, start=1, multiplicity=mixer.d_k * mixer.d_v)  # as Λ's

    return view


@torch.no_grad()
def factor_spectra(model: SequenceModel, batch: dict) -> pd.DataFrame:
    """Bin shares (``companion.spectra.summarize`` rows) of Λ and of its two factors for every
    attention layer of ``model`` on ``batch``, with a ``factor`` column: "Λ", "query change"
    or "retention"."""
    tables = [
        summarize(collect(model, batch, view=_view(i))).assign(factor=f)
        for i, f in enumerate(FACTORS)
    ]
    layers = set(tables[0]["layer"]) if not tables[0].empty else set()
    lam = summarize(collect(model, batch)).assign(factor="Λ")
    return pd.concat([lam[lam["layer"].isin(layers)], *tables], ignore_index=True)


def table(index: pd.DataFrame) -> pd.DataFrame:
    """:func:`factor_spectra` of every run of ``index`` (the runs index) whose mixer has the
    two factors, with the run's ``task, model, variant, seed``."""
    out = []
    for _, run in index.iterrows():
        model, batch = trained_model(run["path"])
        rows = factor_spectra(model, batch)
        if not rows.empty:
            out.append(rows.assign(**{k: run[k] for k in ("task", "model", "variant", "seed")}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


ABOVE_ONE = MAGNITUDE_BINS[4:]  # the bins of |λ| > 1


def carriers(rows: pd.DataFrame, floor: float = 0.01) -> pd.DataFrame:
    """Per ``task, model, variant`` of :func:`table` rows (every layer, head and seed pooled):
    the share of Λ and of each factor in ``[0, 0.1]`` and above 1, and ``near 0 from``: the
    factor with the larger share in ``[0, 0.1]`` where Λ has at least ``floor`` there ("—"
    elsewhere). Λ above 1 is always the query change's: the retention ``1 − p_ii`` never
    exceeds 1."""
    pooled = rows[(rows["kind"] == "magnitude") & (rows["head"] == "all")]
    keys = ["task", "model", "variant"]
    shares = pooled.groupby([*keys, "factor", "bin"])["mean"].mean().unstack("bin")
    near0 = shares["[0,0.1]"].unstack("factor")
    above = shares.reindex(columns=list(ABOVE_ONE), fill_value=0.0).sum(axis=1).unstack("factor")
    out = pd.DataFrame(
        {
            "Λ in [0, 0.1]": near0["Λ"],
            **{f"{f} in [0, 0.1]": near0[f] for f in FACTORS},
            "Λ above 1": above["Λ"],
            "query change above 1": above[FACTORS[0]],
        }
    )
    larger = near0[list(FACTORS)].idxmax(axis=1)
    out["near 0 from"] = larger.where(near0["Λ"] >= floor, "—")
    return out.reset_index()
