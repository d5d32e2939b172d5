"""Words and tables of the book: the accuracy table against the baselines, Markdown tables,
the profile descriptions and record, how each task is scored, and the one naming of models
and tasks that every page shares."""

import pandas as pd
import pytest
from builders import identity

from companion import baselines as B
from companion import report as R
from companion import style as S
from companion.layers import MIXERS
from companion.tasks import PROFILES, TASKS, metric


def test_accuracy_table_pivots_tasks_by_model(monkeypatch):
    from companion import evidence

    image = [
        B.Baseline("majority class", "trivial", "accuracy", 0.10, 1000),
        B.Baseline("linear classifier on pixels", "shallow", "accuracy", 0.80, 1000),
    ]
    lm = [B.Baseline("bigram", "trivial", "perplexity", 14.0, 1000)]
    refs = {"image": (image, B.gate(image)), "lm": (lm, B.gate(lm))}
    monkeypatch.setattr(R.tables, "task_baselines", lambda task, profile: refs.get(task))
    monkeypatch.setattr(evidence.baselines, "for_task", lambda task, profile, **_: refs[task])

    def run(model, variant, task, seed, **metric):
        return {**identity(model, model, variant, task, seed), "mixer": model, **metric}

    rows = [
        run("softmax", "", "image", seed, test_accuracy=acc)
        for seed, acc in ((1, 0.5), (2, 0.9), (3, 0.12))
    ]
    rows += [run("softmax", "nomix", "image", s, test_accuracy=a) for s, a in ((1, 0.4), (2, 0.44))]
    rows.append(run("s4d", "", "lm", 1, test_perplexity=12.34))
    rows.append(run("s4d", "gate", "lm", 1, test_perplexity=9.0))
    table = R.accuracy_table(pd.DataFrame(rows))
    image_rows = ["Image (acc. %)", "Image, without mixing"]
    assert list(table.index) == [*image_rows, "Language model (ppl)"]
    references = ["strongest trivial predictor", "strongest shallow predictor"]
    assert list(table.columns) == ["Softmax attn.", "S4D", *references]
    # every seed: † did not use its state (the control's 42 % + 3 points), ‡ used it but
    # stayed below the shallow line (80 % + 3 points)
    assert table.loc["Image (acc. %)", "Softmax attn."] == "50.7 (50.0‡, 90.0, 12.0†)"
    assert table.loc["Image, without mixing", "Softmax attn."] == "42.0 (40.0, 44.0)"
    assert table.loc["Image (acc. %)", references].tolist() == [
        "10.0 (majority class)",
        "80.0 (linear classifier on pixels)",
    ]
    assert table.loc["Image, without mixing", references].tolist() == ["", ""]
    # no control ran on the language model: nothing passes
    assert table.loc["Language model (ppl)", "S4D"] == "12.3†"
    assert table.loc["Image (acc. %)", "S4D"] == "—"
    assert "S4D · gate" in R.accuracy_table(pd.DataFrame(rows), variants=True).columns


def test_markdown_cells_escape_pipes_and_newlines():
    frame = pd.DataFrame({"a|b": ["x|y", "two\nlines"], "n": [1, 2.5]})
    assert R.markdown_table(frame).splitlines() == [
        "| a\\|b | n |",
        "| --- | --- |",
        "| x\\|y | 1.0 |",
        "| two lines | 2.5 |",
    ]


def test_every_profile_is_described_and_a_custom_one_says_so():
    assert set(PROFILES) <= set(R.PROFILES)
    assert "**quick** profile" in R.profile("quick").what
    assert "custom" in R.profile("mine").what and R.profile("mine").evidence == "mine"


def test_profile_page_lists_the_record():
    text = R.profile_page("quick", {"commit": "abc1234", "wall_seconds": 1500, "runs": 42})
    assert "**quick** profile" in text and "`abc1234`" in text and "25.0 min" in text
    assert "| runs | 42 |" in text and "| finished |" in text
    assert not any(line.startswith("#") for line in text.splitlines())


def test_each_task_is_scored_by_its_own_metric():
    lm, mqar = metric("lm"), metric("mqar")
    assert (lm.column(), lm.lower_is_better, lm.unit) == ("test_perplexity", True, "ppl")
    assert (mqar.column("val"), mqar.lower_is_better) == ("val_accuracy", False)
    assert mqar.unit == "acc. %"
    assert (lm.shown(8.1749), mqar.shown(0.9934)) == ("8.2", "99.3")
    assert (lm.words(8.1749), mqar.words(0.9934)) == ("perplexity 8.17", "99.3 %")
    with pytest.raises(ValueError, match="choose one of"):
        metric("imdb")


def test_every_model_and_task_has_one_name_colour_and_place():
    assert S.MODEL_ORDER == MIXERS and S.TASK_ORDER == TASKS
    assert set(S.MODEL_NAMES) == set(S.MODEL_COLORS) == set(MIXERS)
    assert set(S.TASK_NAMES) == set(S.TASK_MARKERS) == set(TASKS)
    assert len(set(S.MODEL_COLORS.values())) == len(MIXERS)  # no two models share a colour
    assert S.run_label("mamba2_lti", "lti", "mamba2") == "Mamba-2 (pseudo-LTI)"
    assert S.run_label("s4d", "gate") == "S4D · gate"
    assert sorted(["lm", "zeta", "listops"], key=S.task_key) == ["listops", "lm", "zeta"]


def test_a_generated_task_is_described_from_its_data_not_its_settings():
    from companion.tasks import get_task
    from companion.tasks.listops import nesting_depths

    text = R.stand_in("listops", "smoke")
    rows = get_task("listops", "smoke").stored("test")["input_ids"]
    deepest = int(nesting_depths(rows).max())
    assert f"with {deepest}" in text and "operator levels" in text
    assert R.stand_in("mqar", "smoke").startswith("vocabulary ")
    assert "{" not in R.profile("quick").what


def test_the_decision_rule_states_the_numbers_the_code_applies(monkeypatch):
    from companion import claims, decision

    text = R.decision_rule()
    assert "by at\nleast 3 points and 2 binomial standard errors" in text
    assert "perplexity at most 0.9 ×" in text and "at least two of its seeds" in text
    assert (
        "at least 10 % of the\neigenvalues in $[0, 0.1]$ and more there than in $(0.1, 0.5]$"
        in text
    )
    assert "accuracy ceiling (99 %)" in text and "exceeds 0.025 goes" in text
    monkeypatch.setattr(B, "MARGIN", 0.05)
    monkeypatch.setattr(decision, "MIN_LEARNED", 3)
    monkeypatch.setattr(claims, "PEAK_MASS", 0.2)
    text = R.decision_rule()
    assert "least 5 points" in text and "at least three of its seeds" in text
    assert "at least 20 % of the" in text


def test_the_profiles_state_the_sizes_and_seeds_of_the_configuration_files(monkeypatch):
    from companion import grid

    quick, smoke = R.profile("quick"), R.profile("smoke")
    assert "models of two layers and width 64" in quick.what and "14×14" in quick.what
    assert "vocabulary 8,192, length 512 and 64 pairs" in quick.what
    assert "two seeds each" in quick.evidence and "width 16" in smoke.what
    monkeypatch.setattr(grid, "ladder_seeds", lambda: [1, 2, 3, 4])
    assert "four seeds each" in R.profile("ladder").evidence
