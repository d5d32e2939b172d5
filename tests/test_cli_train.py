"""`companion train`: bad input exits with status 2, one line naming the choices, no folder."""

import pytest
from builders import exit_code

from companion.cli import main

BAD = {
    "--task foo --model softmax": "unknown task 'foo'; choose one of: image, listops, lm, mqar",
    "--task mqar --model gru": "unknown model 'gru' for mqar; choose one of: linear, lru, mamba2",
    "--task image --model softmax --variant big": "unknown variant 'big' for image/softmax; "
    "choose one of: conv, layers1, layers4",
    "--task mqar --model mamba2 --set model.mixer_options.norm_fn=exp": "norm_fn do not apply "
    "to mixer 'mamba2'; its options: conv",
    "--task mqar --model mamba2 --set train.steps=0": "train.steps must be positive",
    "--task mqar --model mamba2 --set train.steps=-5": "train.steps must be positive",
    "--task mqar --model mamba2 --set train.steps": "malformed --set 'train.steps'",
    "--task mqar --model mamba2 --set =3": "malformed --set '=3'",
    "--task mqar --model mamba2 --set train.foo=1": "unknown setting 'train.foo'; valid here:",
    "--task mqar --model mamba2 --set train.lr=fast": "train.lr must be a number",
    "--task mqar --model norm --set model.mixer_options.norm_fn=relu": "unknown norm_fn 'relu'; "
    "choose one of: exp, softplus, sigmoid, elu",
    "--task mqar --model mamba2 --profile huge": "invalid choice: 'huge'",
}


@pytest.mark.parametrize("argv", BAD)
def test_bad_input_is_one_line_status_2_and_no_folder(argv, tmp_path, capsys):
    assert exit_code(["train", *argv.split(), "--root", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and BAD[argv] in err
    assert not (tmp_path / "runs").exists()


def test_a_good_run_prints_its_metrics(tmp_path, capsys):
    argv = "--task mqar --model linear --profile smoke --set train.lr=1e-3 --quiet"
    assert main(["train", *argv.split(), "--root", str(tmp_path)]) == 0
    assert "test_accuracy=" in capsys.readouterr().out
    assert (tmp_path / "smoke" / "mqar-linear-s1919" / "complete.json").exists()
    assert main(["runs", "index", "--root", str(tmp_path)]) == 0
    assert "mqar-linear-s1919" in (tmp_path / "index.csv").read_text()
