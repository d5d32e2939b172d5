"""Bad input to every subcommand: exit status 2, one line on stderr that names the setting or
path and what is valid, and nothing written (not a run folder, not a data cache, not a log).

The table is generated from the schema where a rule decides (one wrong type and one value out
of range per ruled setting), and written out where the command line decides."""

import os
import stat
from pathlib import Path

import pytest
from builders import exit_code

from companion import cli
from companion import config as C
from companion.layers import mixer_class
from companion.model import ModelConfig
from companion.schema import number, rules
from companion.tasks import preset

TRAIN = "train --task mqar --model linear --profile smoke --quiet"

# (setting, a value of the wrong type, a value out of range or not a choice)
TRAIN_BAD = {
    "lr": ("fast", "0"),
    "ssm_lr": ("abc", "-1"),
    "weight_decay": ("lots", "-1"),
    "decay_transition": ("maybe", "2"),
    "betas": ("0.9", "[0.9]"),
    "batch_size": ("abc", "0"),
    "steps": ("abc", "-5"),
    "epochs": ("abc", "-1"),
    "warmup_steps": ("abc", "-5"),
    "warmup_epochs": ("abc", "-1"),
    "min_lr": ("abc", "-1e-3"),
    "grad_clip": ("abc", "-1"),
    "eval_every": ("often", "0"),
    "eval_examples": ("all", "0"),
    "early_stop": ("yes", "1.5"),
    "spectra_points": ("abc", "-1"),
    "analysis_examples": ("abc", "-4"),
    "checkpoint_every": ("abc", "0"),
}
MODEL_BAD = {
    "mixer": ("3", "gru"),
    "d_model": ("abc", "-16"),
    "n_layers": ("abc", "0"),
    "n_heads": ("abc", "0"),
    "state_dim": ("abc", "0"),
    "mlp": ("3", "moe"),
    "mlp_ratio": ("abc", "-1"),
    "norm": ("3", "group"),
    "prenorm": ("maybe", "1"),
    "bn_momentum": ("abc", "0"),
    "gate": ("maybe", "0"),
    "dropout": ("abc", "1"),
    "positional": ("maybe", "1"),
    "mixing": ("maybe", "2"),
}
# (mixer, option, the experiment that uses that mixer, a bad value: out of range or above its bound)
MIXER_BAD = [
    ("linear", "conv", "mqar/linear", "-1"),
    ("linear", "dropout", "mqar/linear", "1.5"),
    ("norm", "norm_fn", "mqar/norm", "relu"),
    ("norm", "feature_map", "mqar/norm", "square"),
    ("norm", "conv", "mqar/norm", "abc"),
    ("lru", "r_min", "mqar/lru", "2"),
    ("lru", "r_max", "mqar/lru", "0"),
    ("lru", "max_phase", "mqar/lru", "-1"),
    ("mamba2", "conv", "mqar/mamba2", "-4"),
    ("s4", "init", "mqar/s4", "lin"),
    ("s4", "l_max", "mqar/s4", "0"),
    ("s4", "l_max", "mqar/s4", "10000000"),
    ("mamba2", "conv", "mqar/mamba2", "10000000"),
    ("softmax", "conv", "mqar/softmax", "10000000"),
    ("softmax", "dropout", "mqar/softmax", "-0.1"),
]
# task -> {data option: bad value}
DATA_BAD = {
    "mqar": {
        "n_train": "0",
        "vocab_size": "2",
        "n_pairs": "0",
        "alpha": "0",
        "filler": "maybe",
        "delay": "-1",
    },
    "listops": {"n_train": "0", "max_depth": "0", "source": "web", "seq_len": "1", "levels": "-1"},
    "text": {"level": "word", "source": "web", "val_fraction": "1", "max_train": "-1"},
    "image": {"encoding": "rgb", "downsample": "0", "source": "svhn", "test_fraction": "0"},
    "lm": {"tokenizer": "bpe", "block_size": "1", "source": "web", "max_val": "-1"},
}


# settings without an upper bound: a seed is any 32-bit number (checked as the run's seed), a
# rate or a fraction has its own rule
UNBOUNDED_INTS = {"seed"}


def _above_bounds(cls) -> dict[str, str]:
    """Every setting of ``cls`` with an upper bound, at ten times that bound; every whole-number
    setting but those in UNBOUNDED_INTS must have one."""
    ruled = rules(cls)
    missing = {k for k, r in ruled.items() if r.kind is int and r.at_most is None}
    assert missing <= UNBOUNDED_INTS, f"{cls.__name__}: no upper bound for {sorted(missing)}"
    return {k: number(10 * r.at_most) for k, r in ruled.items() if r.at_most is not None}


def _schema_cases() -> list[tuple[str, str]]:
    cases = []
    for section, table, cls in (
        ("train", TRAIN_BAD, C.TrainConfig),
        ("model", MODEL_BAD, ModelConfig),
    ):
        assert set(table) == set(rules(cls)) - {"head"}, f"every {section} setting is tried"
        for key, values in table.items():
            for value in values:
                cases.append((f"{TRAIN} --set {section}.{key}={value}", f"{section}.{key} = "))
        for key, value in _above_bounds(cls).items():
            cases.append((f"{TRAIN} --set {section}.{key}={value}", f"{section}.{key} = {value}"))
    for mixer, option, experiment, value in MIXER_BAD:
        task, model = experiment.split("/")
        assert option in mixer_class(mixer).OPTIONS
        argv = f"train --task {task} --model {model} --profile smoke --quiet"
        cases.append((f"{argv} --set model.mixer_options.{option}={value}", f".{option} = "))
    for task, options in DATA_BAD.items():
        model = "linear"
        for key, value in options.items():
            assert key in rules(type(preset(task, "smoke")))
            argv = f"train --task {task} --model {model} --profile smoke --quiet"
            cases.append((f"{argv} --set data.{key}={value}", f"data.{key} = "))
        for key, value in _above_bounds(type(preset(task, "smoke"))).items():
            argv = f"train --task {task} --model linear --profile smoke --quiet"
            cases.append((f"{argv} --set data.{key}={value}", f"data.{key} = {value}"))
    return cases


CLI_CASES = [
    # what to train
    ("train --task foo --model softmax", "unknown task 'foo'; choose one of: image, listops, lm"),
    ("train --task mqar --model gru", "unknown model 'gru' for mqar; choose one of: linear"),
    ("train --task image --model softmax --variant big", "unknown variant 'big' for image/softmax"),
    ("train --task lm --model lru --variant conv", "unknown variant 'conv' for lm/lru"),
    ("train --task mqar --model mamba2 --profile huge", "invalid choice: 'huge'"),
    ("train --task mqar --model mamba2 --seed abc", "invalid int value: 'abc'"),
    ("train --task mqar --model mamba2 --seed -1", "seed = -1: expected a whole number ≥ 0"),
    ("train --task mqar --model mamba2 --seed 4611686018427387904", "seed = 4611686018427387904"),
    ("train --task mqar --model mamba2 --set seed=abc", "seed = 'abc': expected a whole number"),
    ("train --task mqar --model mamba2 --set seed=1.5", "seed = 1.5: expected a whole number"),
    ("train --model mamba2", "the following arguments are required: --task"),
    ("train --task mqar", "the following arguments are required: --model"),
    ("train --task mqar --model mamba2 --bogus", "unrecognized arguments: --bogus"),
    # the form of --set
    (f"{TRAIN} --set train.steps", "malformed --set 'train.steps'"),
    (f"{TRAIN} --set =3", "malformed --set '=3'"),
    (f"{TRAIN} --set train..lr=1", "malformed --set 'train..lr=1'"),
    (f"{TRAIN} --set .lr=1", "malformed --set '.lr=1'"),
    (f"{TRAIN} --set train.lr=[1", "malformed --set 'train.lr=[1': the value is not valid YAML"),
    (f"{TRAIN} --set train.foo=1", "unknown setting 'train.foo'; valid here:"),
    (f"{TRAIN} --set model.foo=1", "unknown setting 'model.foo'; valid here:"),
    (f"{TRAIN} --set foo.bar=1", "unknown setting 'foo'; valid here:"),
    (f"{TRAIN} --set model.vocab_size=5", "unknown setting 'model.vocab_size'; valid here:"),
    (f"{TRAIN} --set data.foo=1", "unknown setting 'data.foo'; valid here:"),
    (f"{TRAIN} --set model.mixer_options.foo=1", "'model.mixer_options.foo' of mixer 'linear'"),
    (f"{TRAIN} --set train=1", "train = 1: expected a mapping of settings"),
    (f"{TRAIN} --set model=abc", "model = 'abc': expected a mapping of settings"),
    (f"{TRAIN} --set data=3", "data = 3: expected a mapping of settings"),
    (f"{TRAIN} --set model.mixer_options=abc", "model.mixer_options = 'abc': expected a mapping"),
    (f"{TRAIN} --set train.lr=.nan", "train.lr = nan: expected a number > 0"),
    (f"{TRAIN} --set train.lr=.inf", "train.lr = inf: expected a number > 0"),
    (f"{TRAIN} --set train.steps=1.5", "train.steps = 1.5: expected a whole number ≥ 1"),
    (f"{TRAIN} --set train.steps=true", "train.steps = True: expected a whole number ≥ 1"),
    (f"{TRAIN} --set train.betas=[0.9,1.0]", "train.betas = [0.9, 1.0]: expected two numbers"),
    (f"{TRAIN} --set train.betas=[a,b]", "train.betas = ['a', 'b']: expected two numbers"),
    # settings that are valid alone but not together
    (f"{TRAIN} --set train.epochs=2", "give exactly one of train.steps or train.epochs"),
    (f"{TRAIN} --set train.steps=null", "give exactly one of train.steps or train.epochs"),
    (f"{TRAIN} --set train.min_lr=1", "train.min_lr = 1 exceeds train.lr"),
    (f"{TRAIN} --set model.n_heads=3", "model.d_model=16 is not divisible by model.n_heads=3"),
    (f"{TRAIN} --set model.norm=batch", "model.norm=layer, model.prenorm=true"),
    (f"{TRAIN} --set model.prenorm=false", "model.norm=layer, model.prenorm=true"),
    ("train --task mqar --model lru --profile smoke --set model.gate=true", "model.gate=true"),
    ("train --task mqar --model lru --profile smoke --set model.mlp=mlp", "model.mlp for the"),
    ("train --task mqar --model lru --profile smoke --set model.positional=true", "positional"),
    (
        "train --task mqar --model mamba2 --profile smoke --set model.mixer=lru",
        "'model.mixer_options.conv' of mixer 'lru'",
    ),
    (
        "train --task mqar --model linear --profile smoke --set data.n_pairs=100",
        "MQAR: 100 pairs need 100 distinct keys",
    ),
    # reproduce, runs, data
    ("reproduce --workers 0", "--workers must be from 1 to 1024, got 0"),
    ("reproduce --workers 100000", "--workers must be from 1 to 1024, got 100000"),
    ("throughput --steps 0", "--steps 0 --warmup 20: expected --steps from 1"),
    ("throughput --warmup -1", "--steps 200 --warmup -1: expected"),
    ("throughput --steps 1000000", "--steps 1000000 --warmup 20: expected --steps from 1 and"),
    ("throughput --threads 0", "--threads 0: expected from 1 to 1024"),
    ("throughput --threads 5000", "--threads 5000: expected from 1 to 1024"),
    ("throughput --steps many", "argument --steps: invalid int value: 'many'"),
    ("throughput --profile huge", "invalid choice: 'huge'"),
    ("reproduce --workers abc", "invalid int value: 'abc'"),
    ("reproduce --only nothing/*", "no run of the book matches 'nothing/*'"),
    # --prepare prepares nothing (COMPANION_DATA stays empty) before every argument is checked
    ("reproduce --prepare --workers 0", "--workers must be from 1 to 1024, got 0"),
    ("reproduce --prepare --only nothing/*", "no run of the book matches 'nothing/*'"),
    ("reproduce --prepare --executor slurm --time 0", "time_min (--time) must be at least 1"),
    ("data prepare --profile smoke --lra-release /nonexistent", "--lra-release /nonexistent: no"),
    ("data prepare --profile quick --lra-release /", "only ListOps at the paper profile reads"),
    ("reproduce --profile huge", "invalid choice: 'huge'"),
    ("reproduce --executor cloud", "invalid choice: 'cloud'"),
    ("reproduce --partition gpu", "--partition: only for --executor slurm"),
    ("reproduce --gpus-per-run 1", "--gpus-per-run: only for --executor slurm"),
    ("reproduce --executor slurm --sbatch account", "malformed --sbatch 'account'"),
    ("reproduce --failed", "no failed runs recorded in"),
    ("runs", "the following arguments are required"),
    ("runs list", "invalid choice: 'list'"),
    ("data prepare --task foo", "invalid choice: 'foo'"),
    ("data prepare --profile huge", "invalid choice: 'huge'"),
    ("data info --task foo", "invalid choice: 'foo'"),
    ("data", "the following arguments are required"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
    ("", "the following arguments are required"),
]

# paths: (argv with {tmp} for the test's folder, expected message); the folder holds a file
# "afile" and a read-only folder "locked"
PATH_CASES = [
    (f"{TRAIN} --out {{tmp}}/afile", "--out {tmp}/afile: is a file, not a folder"),
    (f"{TRAIN} --out {{tmp}}/afile/run", "--out {tmp}/afile/run: {tmp}/afile is a file"),
    (f"{TRAIN} --out {{tmp}}/afile/a/b", "--out {tmp}/afile/a/b: {tmp}/afile is a file"),
    (f"{TRAIN} --root {{tmp}}/afile", "--root {tmp}/afile: is a file, not a folder"),
    (f"{TRAIN} --root {{tmp}}/afile/runs", "--root {tmp}/afile/runs: {tmp}/afile is a file"),
    ("reproduce --root {tmp}/afile", "--root {tmp}/afile: is a file, not a folder"),
    ("reproduce --root {tmp}/afile/runs", "--root {tmp}/afile/runs: {tmp}/afile is a file"),
    ("runs index --root {tmp}/missing", "--root {tmp}/missing: no such folder"),
    ("book build {tmp}/nowhere", "book build {tmp}/nowhere: no _toc.yml there"),
    ("runs index --root {tmp}/afile", "--root {tmp}/afile: no such folder"),
    ("runs index --root {tmp}/afile/runs", "--root {tmp}/afile/runs: no such folder"),
    ("book mathjax {tmp}/afile/es5", "book mathjax {tmp}/afile/es5: {tmp}/afile is a file"),
    ("throughput --out {tmp}/afile/t", "--out {tmp}/afile/t: cannot make the folder"),
]
UNWRITABLE_CASES = [
    (f"{TRAIN} --out {{tmp}}/locked/run", "--out {tmp}/locked/run: no permission to write in"),
    (f"{TRAIN} --root {{tmp}}/locked/runs", "--root {tmp}/locked/runs: no permission to write"),
    ("reproduce --root {tmp}/locked/runs", "--root {tmp}/locked/runs: no permission to write"),
    ("runs index --root {tmp}/locked", "--root {tmp}/locked: no permission to write"),
]
AS_ROOT = os.geteuid() == 0  # root may write anywhere: permissions cannot be tested

CASES = _schema_cases() + CLI_CASES


def test_the_table_is_as_large_as_promised():
    assert len(CASES) + len(PATH_CASES) + len(UNWRITABLE_CASES) >= 140


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _refused(argv: list[str], expected: str, capsys) -> None:
    assert exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err, err


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_status_2_and_writes_nothing(
    argv, expected, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a log, a runs folder or a cache would land here
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path / "data"))
    extra = ["--root", str(tmp_path / "runs")] if argv.startswith(("train", "reproduce")) else []
    _refused(argv.split() + extra, expected, capsys)
    assert _tree(tmp_path) == set()


def _paths(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(stat.S_IRUSR | stat.S_IXUSR)


ALL_PATH_CASES = PATH_CASES + [
    pytest.param(*case, marks=pytest.mark.skipif(AS_ROOT, reason="root may write anywhere"))
    for case in UNWRITABLE_CASES
]


@pytest.mark.parametrize(
    ("argv", "expected"), ALL_PATH_CASES, ids=[c[0] for c in PATH_CASES + UNWRITABLE_CASES]
)
def test_a_path_that_cannot_be_written_is_refused_in_one_line(
    argv, expected, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _paths(tmp_path)
    before = _tree(tmp_path)
    _refused(argv.format(tmp=tmp_path).split(), expected.format(tmp=tmp_path), capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--lengths", "0"], "--lengths 0: expected lengths from 1 to 16384"),
        (["bench", "--lengths", "8", "100000"], "--lengths 8 100000: expected lengths from 1"),
        (["bench", "--recurrent-max-len", "100000"], "--recurrent-max-len 100000: expected"),
        (["bench", "--spectra-len", "0"], "--spectra-len 0: expected lengths from 1 to 16384"),
        (["bench", "--out", "/proc/version"], "--out /proc/version: is a file"),
    ],
)
def test_bench_refuses_bad_sizes_and_folders_in_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_book_build_of_an_empty_folder_is_one_error(tmp_path, capsys):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    assert cli.main(["book", "build", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "pages named in _toc.yml are missing: intro" in err


def test_throughput_takes_its_own_options_through_the_front_door(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["throughput", "--help"])
    assert stop.value.code == 0 and "usage: companion throughput" in capsys.readouterr().out
