"""The import graph of ``companion``: no cycle among the imports at the top of its modules, and
no import inside a function unless it is allowed below with its reason.

The graph is read from the source with ``ast``, nothing is imported: ``import companion.x`` and
``from companion.x import y`` give an edge to ``companion.x``, or to ``companion.x.y`` when
``y`` is a submodule (``from companion import config`` is an edge to ``companion.config``).
Importing ``companion.x.y`` also runs the package ``companion/x/__init__.py`` first; those
edges are left out (a package that imports its own submodules would otherwise be a cycle).
"""

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "companion"

# Function-local imports that stay, as (importing module, imported module pattern): the reason.
TORCH_FREE_CLI = "loads torch, which `companion --help` and `companion data ...` do without"
TORCH_FREE_TASKS = "companion.tasks loads no torch (the data commands); only to collate a batch"
ALLOWED_LOCAL = {
    # the command line: each command imports its own modules (see the top of cli.py)
    ("companion.cli", "companion.config"): TORCH_FREE_CLI,
    ("companion.cli", "companion.train"): TORCH_FREE_CLI,
    ("companion.cli", "companion.runs"): TORCH_FREE_CLI,
    ("companion.cli", "companion.slurm"): TORCH_FREE_CLI,
    ("companion.cli", "companion.reproduce"): TORCH_FREE_CLI,
    ("companion.cli", "companion.book"): TORCH_FREE_CLI,
    ("companion.cli", "companion.bench"): TORCH_FREE_CLI,
    ("companion.cli", "companion.throughput"): TORCH_FREE_CLI,
    ("companion.cli", "companion.pretrained"): TORCH_FREE_CLI,
    ("companion.cli", "companion.gpu_check"): TORCH_FREE_CLI,
    # transformers belongs to the optional `pretrained` extra
    ("companion.pretrained", "transformers*"): "an optional dependency (the pretrained extra)",
    ("companion.packaged", "transformers*"): "an optional dependency (the pretrained extra)",
    # the names and colours of the book are read by pages and tables without a figure
    ("companion.style", "seaborn"): "naming a model needs no plotting library",
    ("companion.style", "matplotlib_inline.*"): "naming a model needs no plotting library",
    ("companion.report.pages", "docutils.nodes"): "an optional dependency (the book extra)",
    # a copy of companion.throughput times older revisions of the package, which lack it
    ("companion.throughput", "companion.report"): "older revisions have no companion.report",
    # companion.tasks is what `companion data prepare/info` and `--help` (the task and profile
    # names) load: torch is imported by the padding functions that build tensors
    ("companion.tasks.base", "torch"): TORCH_FREE_TASKS,
    ("companion.tasks.base", "torch.nn.utils.rnn"): TORCH_FREE_TASKS,
    # papermill belongs to the optional `book` extra: `companion reproduce --no-book` runs
    # without it
    ("companion.reproduce", "papermill"): "an optional dependency (the book extra)",
    ("companion.reproduce", "jupyter_client.manager"): "papermill's kernels (the book extra)",
    ("companion.reproduce", "traitlets"): "papermill's kernels (the book extra)",
    ("companion.reproduce", "jupyter_core.paths"): "papermill's kernels (the book extra)",
    # scikit-learn takes a second or two to import; it fits the shallow references once per
    # data cache, and every later reader takes the stored table
    ("companion.baselines", "companion.shallow"): "scikit-learn, fitted once per data cache",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def known(name: str) -> str:
    """The longest prefix of ``name`` that is a module of the package."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import of ``module``, at any
    depth; modules of the package are resolved to the module (or submodule) imported."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    name = alias.name
                    target = known(name) if name.split(".")[0] == "companion" else name
                    found.append((target, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from this package, or level - 1 packages up
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                if base.split(".")[0] == "companion":
                    for alias in child.names:
                        found.append((known(f"{base}.{alias.name}"), child.lineno, in_function))
                elif base != "__future__":
                    found.append((base, child.lineno, in_function))
            local = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, in_function or local)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def package_graph(with_local: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports at the top (``with_local``: anywhere)."""
    return {
        m: {t for t, _, local in found if (with_local or not local) and t in MODULES and t != m}
        for m, found in GRAPH.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)

    found = []
    for component in components:  # a shortest way back to the start, within the component
        start = min(component)
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            nexts = sorted(graph[path[-1]] & component)
            if start in nexts:
                found.append([*path, start])
                break
            for w in nexts:
                if w not in seen:
                    seen.add(w)
                    paths.append([*path, w])
    return found


def test_the_graph_is_read():
    graph = package_graph()
    assert "companion.reproduce" in graph and "companion.tasks.common" in graph
    assert "companion.executors" in graph["companion.slurm"]
    assert "companion.tasks.cache" in graph["companion.tasks.base"]  # from companion.tasks import
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_at_the_top_of_modules():
    found = cycles(package_graph())
    assert not found, "import cycles among top-of-module imports: " + "; ".join(
        " -> ".join(cycle) for cycle in found
    )


def test_no_import_cycle_hidden_inside_a_function():
    """An import inside a function must not be what keeps a cycle out of the graph above."""
    found = cycles(package_graph(with_local=True))
    assert not found, "import cycles through imports inside functions: " + "; ".join(
        " -> ".join(cycle) for cycle in found
    )


def test_function_local_imports_are_only_the_allowed_ones():
    local = [
        (m, target, line)
        for m, found in GRAPH.items()
        for target, line, in_function in found
        if in_function
    ]

    def allowed(m, target):
        return any(m == am and fnmatch.fnmatchcase(target, at) for am, at in ALLOWED_LOCAL)

    unexpected = [
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for m, line, target in sorted({(m, line, t) for m, t, line in local if not allowed(m, t)})
    ]
    assert not unexpected, (
        "imports inside functions (move them to the top, or allow them in tests/test_imports.py "
        "with the reason): " + "; ".join(unexpected)
    )
    unused = [
        f"{m} -> {t}"
        for m, t in ALLOWED_LOCAL
        if not any(m == lm and fnmatch.fnmatchcase(lt, t) for lm, lt, _ in local)
    ]
    assert not unused, f"allowed function-local imports that no longer exist: {unused}"


def test_help_and_the_data_layer_load_no_torch():
    """What the allowed imports above are for: ``companion --help`` and every task module load
    neither torch nor datasets."""
    code = (
        "import contextlib, io, sys\n"
        "from companion import cli, tasks\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "for name in tasks.TASKS:\n"
        "    tasks.get_task(name, 'smoke')\n"
        "print(' '.join(m for m in ('torch', 'datasets') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def test_the_command_line_profiles_are_the_configs():
    """cli takes the profile names from companion.tasks (torch-free); companion.config resolves
    them."""
    from companion import config, tasks

    assert tasks.PROFILES == config.PROFILES


def kernel_stderr(source: str) -> str:
    """What a Jupyter kernel (the book's kind, started like papermill's) writes to stderr while
    it runs the one cell ``source``."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    outputs = nb.cells[0].outputs
    return "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")


@pytest.mark.slow
def test_a_book_kernel_serving_a_split_prints_no_note_about_widgets():
    """Serving a split loads ``datasets`` and with it ``tqdm.auto``, which in a kernel without
    notebook widgets warns once with the environment's absolute path: the book's pages showed
    it under whichever chapter first computed a baseline. The control imports ``datasets``
    plainly in a kernel and must show the note, or this test no longer tests anything."""
    served = kernel_stderr(
        "import pyarrow as pa\n"
        "from companion.tasks.cache import to_dataset\n"
        "assert len(to_dataset(pa.table({'x': [1, 2, 3]}), 'train')) == 3\n"
        "from companion.tasks.fetch import hub_reachable\n"
        "from companion.tasks.common import import_hf\n"
        "import_hf('huggingface_hub.constants')\n"
    )
    assert served == ""
    assert "TqdmWarning" in kernel_stderr("import datasets")
