"""environment.yml (Binder) and pyproject.toml (pip) must describe the same environment."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return project, conda, pip


def test_torch_pin_is_the_same():
    project, _, pip = load()
    pins = [d for d in project["dependencies"] if d.startswith("torch")]
    assert pins == ["torch==2.13.0"]
    assert pins[0] in pip


def test_python_version_satisfies_requires_python():
    project, conda, _ = load()
    (python,) = [d for d in conda if d.startswith("python")]
    version = tuple(int(p) for p in python.split("=")[-1].split("."))
    minimum = tuple(int(p) for p in re.findall(r"\d+", project["requires-python"]))
    assert version >= minimum


def test_pip_section_installs_the_package_with_the_book_and_pretrained_extras():
    project, _, pip = load()
    assert "-e .[book,pretrained]" in pip
    assert {"book", "pretrained"} <= set(project["optional-dependencies"])
    assert any(line.startswith("--extra-index-url") and "cpu" in line for line in pip)
