"""Binder, simulated as it builds: repo2docker (``--no-build``: no container daemon needed) reads
a clean copy of the repository and must choose the Conda environment of ``environment.yml`` and
run ``postBuild``; then the ``postBuild`` itself runs in that copy (no runs, no data of its own)
and every notebook of ``notebooks/`` executes there with its default parameters."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from companion.io import git
from companion.tasks.cache import data_root

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The repository's tracked files as they are in the working tree: what Binder checks out."""
    dest = tmp_path_factory.mktemp("binder") / "repo"
    for name in git("ls-files", cwd=ROOT).splitlines():
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_repo2docker_installs_the_environment_file_and_runs_post_build(clone):
    result = subprocess.run(
        [str(BIN / "repo2docker"), "--no-build", "--debug", str(clone)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    dockerfile = result.stdout + result.stderr
    assert result.returncode == 0, dockerfile[-2000:]
    assert "python=3.11" in dockerfile and '--file "environment.yml"' in dockerfile
    assert "RUN ./postBuild" in dockerfile


def test_after_post_build_every_notebook_runs_with_its_defaults(clone, monkeypatch):
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(clone),  # the copy's package, as Binder's editable install
        "COMPANION_DATA": str(data_root()),  # the smoke data `make test` prepared
        "PIP_DRY_RUN": "1",  # postBuild's install of the copy, resolved but left out of .venv
    }
    build = subprocess.run(
        ["bash", "postBuild"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    assert "Would install companion-" in build.stdout
    assert (clone / "runs" / "smoke" / "index.csv").is_file()
    assert not (clone / "runs" / "quick").exists()
    for name, value in env.items():  # the kernels papermill starts import the copy
        monkeypatch.setenv(name, value)
    for notebook in sorted((clone / "notebooks").glob("*.ipynb")):
        out = clone / "executed" / notebook.name
        out.parent.mkdir(exist_ok=True)
        papermill.execute_notebook(
            notebook, out, cwd=notebook.parent, progress_bar=False, kernel_name="python3"
        )
        if notebook.name[:2] in {"02", "03", "04", "05", "06", "07", "08"}:
            assert "showing the smoke runs instead" in out.read_text(), notebook.name
