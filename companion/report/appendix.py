"""The book's appendix of configurations, generated from the YAML files."""

from __future__ import annotations

from companion import config as C
from companion import grid
from companion.grid import CONTROL
from companion.model import describe as describe_model


def appendix() -> str:
    """The book's appendix of configurations, in Markdown: per task, every model at the paper
    and quick profiles, the structure each builds, where each departs from the public
    configuration it follows, and every ablation with what it changes."""

    def arch(cfg) -> str:
        m = cfg.model
        opts = ", ".join(f"{k}={v}" for k, v in m.get("mixer_options", {}).items())
        extra = "".join(f", {k}" for k in ("gate", "positional") if m.get(k))
        return (
            f"{m['n_layers']}×{m['d_model']}, state {m['state_dim']}, mlp {m.get('mlp', '—')}"
            f"{extra}{', ' + opts if opts else ''}"
        )

    def length(cfg) -> str:
        t = cfg.train
        return f"{t.steps} steps" if t.steps else f"{t.epochs:g} epochs"

    lines = [
        "Generated from the YAML files in `companion/configs/` by `make reproduce`.",
        "",
        f"Every experiment below also runs as `{CONTROL}`: the same configuration with each "
        "sequence mixer replaced by the identity (`model.mixing: false`), the control a model "
        "must beat to count as having used its state.",
        "",
    ]
    for task in grid.tasks():
        lines += [
            f"## {task}",
            "",
            "| model | profile | architecture | lr | weight decay | batch | length |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for model in grid.models(task):
            for profile in ("paper", "quick"):
                cfg = C.resolve(task, model, None, profile)
                t = cfg.train
                lines.append(
                    f"| {model} | {profile} | {arch(cfg)} | {t.lr:g} | "
                    f"{t.weight_decay:g} | {t.batch_size} | {length(cfg)} |"
                )
        lines += [
            "",
            "Structure, read from the modules each configuration builds (the same at every "
            "profile; `LN`/`BN` layer or batch norm, `drop` dropout, `+` the residual sum):",
            "",
            "| model | encoder → blocks → head |",
            "| --- | --- |",
        ]
        for model in grid.models(task):
            cfg = C.resolve(task, model, None, "quick")
            lines.append(f"| {model} | {describe_model(C.model_config(cfg, C.task_of(cfg)))} |")
        lines += ["", "Where each file departs from the public configuration it follows:", ""]
        for model in grid.models(task):
            lines += [
                f"- `{model}` ({d['part']}): {d['what']}. *Why:* {d['why']}."
                for d in grid.departures(task, model)
            ]
        ablations = [
            (m, v) for m in grid.models(task) for v in grid.variants(task, m) if v != CONTROL
        ]
        if ablations:
            lines += ["", "Ablations (paper profile):", ""]
            lines += [
                f"- `{m}/{v}`: {arch(C.resolve(task, m, v, 'paper'))}, lr "
                f"{C.resolve(task, m, v, 'paper').train.lr:g}"
                for m, v in ablations
            ]
        lines.append("")
    return "\n".join(lines)
