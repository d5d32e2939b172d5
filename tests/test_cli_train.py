"""`companion train` end to end (its bad input: test_bad_input.py)."""

from companion.cli import main


def test_a_good_run_prints_its_metrics(tmp_path, capsys):
    argv = "--task mqar --model linear --profile smoke --set train.lr=1e-3 --quiet"
    assert main(["train", *argv.split(), "--root", str(tmp_path)]) == 0
    assert "test_accuracy=" in capsys.readouterr().out
    (folder,) = (tmp_path / "smoke").glob("mqar-linear-s1919-set*")  # not the book's folder
    assert (folder / "complete.json").exists()
    assert main(["runs", "index", "--root", str(tmp_path)]) == 0
    assert "mqar-linear-s1919" in (tmp_path / "index.csv").read_text()
