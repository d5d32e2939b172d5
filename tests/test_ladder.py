"""The scale ladder: its runs (configs/book.yaml), its data, and the analysis that puts a rung's
runs in the place of the quick runs before the claims read them."""

import json
from dataclasses import replace

import pandas as pd
import pytest
from builders import cond, exit_code, ladder_runs, table

from companion import claims, grid, ladder, plots
from companion import config as C
from companion import evidence as ev
from companion.tasks import listops, preset

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)


def test_the_ladder_profile_is_the_quick_runs_at_its_seeds_then_each_harder_rung():
    quick, runs = C.book_runs("quick"), C.book_runs("ladder")
    assert runs[: len(quick)] == quick
    seeds = set(grid._ladder()["seeds"])
    experiments = {(c.task, c.model_name, c.variant) for c in quick}
    more = runs[len(quick) : len(runs) - len(ladder_runs())]
    for e in experiments:  # every quick experiment at every ladder seed, once
        have = {c.seed for c in quick + more if (c.task, c.model_name, c.variant) == e}
        assert seeds <= have
    assert {(c.task, c.model_name, c.variant) for c in more} <= experiments
    assert all(c.seed in seeds for c in more) and {c.profile for c in more} == {"quick"}
    extra = runs[len(quick) + len(more) :]
    assert extra == ladder_runs() and len({c.run_id for c in runs}) == len(runs)
    assert {c.profile for c in extra} == {"quick"}  # kept with the quick runs
    for task in ladder.tasks():
        harder = [r for r, s in grid.ladder_rungs(task).items() if s]
        assert len(harder) == len(ladder.rungs(task)) - 1  # one rung is the quick run itself
        for rung in harder:
            mine = [c for c in extra if c.task == task and grid.split_rung(c.variant)[1] == rung]
            experiments = {(c.model_name, grid.split_rung(c.variant)[0]) for c in mine}
            assert experiments == set(grid.ladder_experiments(task))
            assert len(mine) == 3 * len(experiments)  # three seeds each
            for c in mine:
                assert c.data == grid.ladder_rungs(task)[rung].get("data", {})


def test_mqar_rungs_keep_the_tokens_and_queries_of_a_quick_step():
    base = preset("mqar", "quick")
    scale = [c for c in ladder_runs() if grid.split_rung(c.variant)[1] in grid.ladder_rungs("mqar")]
    for c in scale:
        quick = C.resolve("mqar", c.model_name, grid.split_rung(c.variant)[0], "quick", c.seed)
        data = replace(base, **c.data)
        assert data.seq_len * c.train.batch_size == base.seq_len * quick.train.batch_size
        assert data.n_pairs * c.train.batch_size == base.n_pairs * quick.train.batch_size
        assert c.train.steps == quick.train.steps


def test_a_rung_run_is_its_experiment_with_the_rung_settings_on_top():
    conv = C.resolve("mqar", "softmax", "layers1-conv-ladder-L256x32", "quick")
    plain = C.resolve("mqar", "softmax", "layers1-conv", "quick")
    assert conv.model == plain.model and conv.train.lr == plain.train.lr
    assert conv.data == {"seq_len": 256, "n_pairs": 32} and conv.train.batch_size == 8
    assert grid.split_rung(conv.variant) == ("layers1-conv", "L256x32")
    assert grid.split_rung("ladder-depth4") == (None, "depth4")
    assert grid.split_rung("layers1-conv") == ("layers1-conv", None)
    assert grid.split_rung(None) == (None, None)


@pytest.mark.parametrize(
    ("variant", "profile", "message"),
    [
        ("ladder-depth9", "quick", "unknown ladder rung 'depth9' for listops; choose one of"),
        ("ladder-depth3", "quick", "'depth3' of listops is the quick run itself"),
        ("ladder-depth4", "paper", "defined at the quick profile only"),
        ("nope-ladder-depth4", "quick", "unknown variant 'nope-ladder-depth4'"),
    ],
)
def test_a_bad_rung_is_refused_in_one_line(variant, profile, message):
    with pytest.raises(C.ConfigError, match=message):
        C.resolve("listops", "lru", variant, profile)


def test_every_listops_rung_can_be_generated():
    # a length window no tree of the rung's depth reaches would never finish generating
    for settings in grid.ladder_rungs("listops").values():
        cfg = replace(preset("listops", "quick"), **settings.get("data", {}))
        rows = listops.generate(20, cfg, seed=0)
        tokens = [listops.tokenize(s) for s, _ in rows]
        assert all(cfg.min_length < len(t) < cfg.max_length for t in tokens)
        if cfg.levels:  # a rung that fixes the nesting: every tree nests exactly that deep
            ids = [[listops.STOI[t] for t in row] for row in tokens]
            assert set(listops.nesting_depths(ids)) == {cfg.levels}
    assert grid.ladder_rungs("listops")["levels4"]["data"]["levels"] == 4


def test_data_prepare_at_ladder_prepares_the_quick_data_and_every_rung_that_changes_it():
    labels = [label for label, _ in grid.data_tasks("ladder", ["mqar", "text"])]
    dials = [f"mqar pressure-K{k}" for k in (2, 4, 8, 16)] + [
        f"mqar delay-d{d}" for d in (8, 16, 32, 64)
    ]
    assert labels == ["mqar", "text", "mqar L128x16", "mqar L256x32", *dials]
    task = dict(grid.data_tasks("ladder", ["mqar"]))["mqar L256x32"]
    assert (task.config.seq_len, task.config.n_pairs) == (256, 32)
    assert exit_code(["data", "prepare", "--profile", "ladders"]) == 2


def test_each_run_is_gated_against_the_baselines_of_its_own_data(monkeypatch):
    asked = []

    def for_task(name, profile, **options):
        asked.append((name, profile, options))
        guess = ev.baselines.Baseline(
            "guess", "trivial", "accuracy", 0.47 if options else 0.17, 10**6
        )
        return [guess], ev.baselines.gate([guess])

    monkeypatch.setattr(ev.baselines, "for_task", for_task)
    monkeypatch.setattr(ev, "run_measures", lambda path: [{"analysis": "exact"}])
    rung = json.dumps({"n_pairs": 32, "seq_len": 256})
    index = pd.DataFrame(
        {
            "task": ["mqar"] * 4,
            "model": ["lru"] * 4,
            "variant": ["", "ladder-L256x32", "nomix", "nomix-ladder-L256x32"],
            "seed": [1] * 4,
            "profile": ["quick"] * 4,
            "data": ["{}", rung, "{}", rung],
            "test_accuracy": [0.4, 0.4, 0.01, 0.01],
            "path": ["a", "b", "c", "d"],
        }
    )
    m = ev.measures(index)
    # 0.4 passes 0.2 but not the harder rung's 0.5 (each its guess + 3 points)
    assert list(m["learned"])[:2] == [True, False]
    assert asked[1] == ("mqar", "quick", {"n_pairs": 32, "seq_len": 256})


def test_only_the_ladder_chapter_sees_the_harder_rungs(one_dial):
    variants = ["", "lti", "ladder-depth4", "lti-ladder-depth2"]
    index = pd.DataFrame({"task": "listops", "model": "mamba2", "variant": variants})
    assert list(ev.without_ladder(index)["variant"]) == ["", "lti"]
    assert ladder.has_runs(index) and not ladder.has_runs(ev.without_ladder(index))
    dial = pd.DataFrame({"task": "mqar", "model": "s4", "variant": ["", "ladder-pressure-K4"]})
    assert not ladder.has_runs(dial)  # a dial's runs alone fill the dials' chapter only


def test_the_ladder_reads_its_experiments_at_every_rung_and_no_other_run():
    rows = [
        ("mqar", "softmax", ""),  # the quick rung of a main model
        ("mqar", "softmax", "layers1-conv"),  # ... of a variant the ladder names
        ("mqar", "softmax", "layers4-lr1e-2"),  # a quick variant it does not name
        ("mqar", "lru", "ladder-L256x32"),
        ("mqar", "softmax", "layers1-conv-ladder-L128x16"),
        ("listops", "mamba2", "lti-ladder-depth4"),
        ("image", "s4", ""),  # another task
    ]
    index = pd.DataFrame(rows, columns=["task", "model", "variant"])
    kept = ladder.runs(index)
    assert [tuple(r) for r in kept.itertuples(index=False)] == [rows[i] for i in (0, 1, 3, 4, 5)]


def test_a_dial_runs_its_models_and_their_controls_at_each_step_with_settings(one_dial):
    runs = [c for c in ladder_runs() if "pressure" in (c.variant or "")]
    variants = {(c.model_name, c.variant) for c in runs}
    assert variants == {
        (m, f"{v}ladder-pressure-{k}")
        for m in ("mamba2", "s4")
        for v in ("", "nomix-")
        for k in ("K4", "K16")
    }  # the step without settings is the quick run
    assert len(runs) == 3 * len(variants)
    for c in runs:
        assert c.data == {"n_pairs": int(c.variant.rpartition("-K")[2])}
        assert c.model.get("mixing", True) is not c.variant.startswith("nomix")
        quick = C.resolve("mqar", c.model_name, None, "quick", c.seed)
        assert c.train == quick.train  # the quick recipe otherwise
    assert grid.control_of("ladder-pressure-K4") == "nomix-ladder-pressure-K4"
    with pytest.raises(C.ConfigError, match="unknown ladder rung 'pressure-K5' for mqar"):
        C.resolve("mqar", "s4", "ladder-pressure-K5")


def test_the_ladder_leaves_the_dials_runs_out(one_dial):
    rows = [
        ("mqar", "s4", ""),
        ("mqar", "s4", "ladder-pressure-K4"),
        ("mqar", "s4", "ladder-L256x32"),
    ]
    index = pd.DataFrame(rows, columns=["task", "model", "variant"])
    assert [tuple(r) for r in ladder.runs(index).itertuples(index=False)] == [rows[0], rows[2]]
    assert list(ladder.label(index)["rung"]) == ["L64x8", "L256x32"]
    assert list(ev.without_ladder(index)["variant"]) == [""]  # nor do the quick chapters


# ---------------------------------------------------------------------------------------------
# the analysis, on measures built by hand


def world(hard_learns: bool) -> pd.DataFrame:
    """C8's world (image parts that hold, one softmax layer with a convolution on MQAR) at the
    quick rung, where it solves MQAR, and at L256x32, where it solves it or does not learn."""
    rows = []
    for model, base, conv in (("softmax", "", "conv"), ("linear", "", "conv")):
        rows.append(cond("image", model, base, final={"near1": 0.7, "near0": 0.3}))
        rows.append(cond("image", model, conv, final={"near1": 0.2, "near0": 0.8}))
    rows.append(cond("image", "norm", "noconv", final={"near1": 0.7, "near0": 0.3}))
    rows.append(cond("image", "norm", "", final={"near1": 0.2, "near0": 0.8}))
    rows.append(cond("mqar", "softmax", "layers1-conv", acc=0.99))
    rows.append(
        cond(
            "mqar",
            "softmax",
            "layers1-conv-ladder-L256x32",
            acc=0.99 if hard_learns else 0.05,
            learned=hard_learns,
        )
    )
    rows.append(cond("mqar", "lru", "ladder-L256x32", acc=0.3))
    return table(*rows)


def test_a_rung_takes_the_place_of_the_quick_runs_of_its_task_only():
    m = world(hard_learns=False)
    hard = ladder.at_rung(m, "mqar", "L256x32")
    mqar = hard[hard["task"] == "mqar"]
    assert set(mqar["variant"]) == {"layers1-conv", ""}  # under the experiments' own names
    assert (mqar["test_accuracy"] == 0.05).sum() + (mqar["test_accuracy"] == 0.3).sum() == len(mqar)
    assert hard[hard["task"] == "image"].equals(m[m["task"] == "image"].reset_index(drop=True))
    quick = ladder.at_rung(m, "mqar", "L64x8")
    assert set(quick.loc[quick["task"] == "mqar", "variant"]) == {"layers1-conv"}
    assert (quick.loc[quick["task"] == "mqar", "test_accuracy"] == 0.99).all()


@pytest.fixture(scope="module")
def verdicts():
    """``ladder.verdicts`` of both worlds (each evaluates every claim at every rung)."""
    return {learns: ladder.verdicts(world(learns)) for learns in (True, False)}


@pytest.mark.parametrize(("hard_learns", "hard"), [(True, "holds"), (False, "untestable")])
def test_a_verdict_moves_along_the_rungs_only_through_the_rung(verdicts, hard_learns, hard):
    v = verdicts[hard_learns]
    c8 = v[v["claim"] == "C8"].set_index("rung")
    assert c8.loc["L64x8", "verdict"] == "holds"
    assert c8.loc["L256x32", "verdict"].startswith(hard)
    assert c8.loc["L128x16", "verdict"] == "incomplete"  # no runs at that rung
    assert set(c8["task"]) == {"mqar"}  # C8 has no part on ListOps
    assert set(v["claim"]) <= set(ladder.CLAIMS)
    # the quick rung's verdict is the claims board's
    board, _ = claims.evaluate(ev.without_ladder(world(hard_learns)), ("exact",))
    assert board.set_index("claim").loc["C8", "verdict"] == "holds"


def test_competence_counts_seeds_past_each_rung_line(verdicts):
    m = world(hard_learns=False)
    comp = ladder.competence(m).set_index(["rung", "model", "variant"])
    assert comp.loc[("L64x8", "softmax", "layers1-conv"), "learned"] == 3
    hard = comp.loc[("L256x32", "softmax", "layers1-conv")]
    assert hard["learned"] == 0 and not hard["competent"] and hard["passed"] == (False,) * 3
    assert comp.loc[("L256x32", "lru", ""), "competent"]
    rungs = ladder.rung_table(ladder.competence(m)).set_index(["task", "rung"])
    assert rungs.loc[("mqar", "L256x32"), "competent"] == "1 of 2"
    assert rungs.loc[("mqar", "L128x16"), "competent"] == "no runs"
    text = ladder.describe(ladder.competence(m), verdicts[False])
    assert "C8 (holds → incomplete → untestable at this scale)" in text


def test_the_ladder_figure_shows_every_verdict_cell(verdicts):
    comp, verd = ladder.competence(world(hard_learns=False)), verdicts[False]
    fig = plots.ladder_figure(comp, verd, caption="test")
    grid = fig.subfigs[1].axes[0]
    cells = [t.get_text() for t in grid.texts]
    columns = sum(len(ladder.rungs(t)) for t in verd["task"].unique())
    assert len(cells) == verd["claim"].nunique() * columns
    assert "untestable" in cells and "holds" in cells
    table = ladder.verdict_table(verd).set_index("claim")
    assert table.loc["C8", "mqar L256x32"].startswith("untestable at this scale")
    assert table.loc["C8", "listops depth4"] == "not read"


def test_a_ladder_run_trains_on_its_rung_data_and_is_gated_against_it(tmp_path, monkeypatch):
    from companion.runs import index as runs_index
    from companion.train import run

    monkeypatch.setenv("COMPANION_DATA", str(tmp_path / "data"))
    tiny = {
        "model": {"d_model": 8, "n_layers": 1, "state_dim": 4},
        "train": {
            "steps": 2,
            "eval_every": 1,
            "checkpoint_every": 2,
            "eval_examples": 8,
            "analysis_examples": 2,
            "spectra_points": 0,
        },
    }
    cfg = C.resolve("listops", "lru", "ladder-depth2", "quick", 1919, tiny)
    run(cfg, root=tmp_path / "runs", progress=False)
    index = runs_index(tmp_path / "runs")
    assert json.loads(index.loc[0, "data"]) == {"max_depth": 2, "min_length": 1}
    m = ev.measures(index)
    depth2 = ev.baselines.for_task("listops", "quick", max_depth=2, min_length=1)[1]
    # the rung's own baselines, not the quick data's (no control ran: nothing passes)
    assert (m["trivial_value"] == depth2.trivial_value).all() and not m["learned"].any()
    assert (m["shallow_line"] == depth2.shallow_line).all()
    comp = ladder.competence(m)
    assert list(comp[["rung", "model", "seeds"]].itertuples(index=False, name=None)) == [
        ("depth2", "lru", 1)
    ]
