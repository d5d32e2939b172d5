"""The book machinery: a tiny book built like the real one, then read by a headless Chromium.

The tiny book uses the real ``book/_config.yml`` and landing page, a markdown page with display
math and an executed notebook (written with nbformat, never run) whose output is a PNG. It is
built with ``-W -n --keep-going``. Chromium (Debian's package, installed here when missing) is
driven over the DevTools protocol through ``--remote-debugging-pipe`` (standard library only):
it loads each page from a local http.server with every other host unresolvable, and the test
checks that figures decode, that MathJax typeset every formula without an error, and that no
request left localhost.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import io
import json
import os
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from PIL import Image

from companion import book

ROOT = Path(__file__).resolve().parents[1]
MATH = r"$$\Lambda_i = \eta_{i-1}/\eta_i$$"
REPO = "https://github.com/example-owner/companion"


# --------------------------------------------------------------------------------------------
# The tiny book


def png_bytes(width=48, height=32) -> bytes:
    image = Image.new("RGB", (width, height), (31, 119, 180))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def executed_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "pygments_lexer": "ipython3"},
    }
    code = nbformat.v4.new_code_cell("plot_spectrum()", execution_count=1)
    code.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "image/png": base64.b64encode(png_bytes()).decode(),
                "text/plain": "<Figure size 480x320 with 1 Axes>",
            },
        )
    ]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A figure\n\nThe eigenvalue $|\\lambda| \\le 1$ below."),
        code,
    ]
    nbformat.validate(nb)
    return nb


@pytest.fixture(scope="module")
def mathjax() -> Path:
    return book.fetch_mathjax(ROOT / "book" / "_mathjax")


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory, mathjax) -> Path:
    src = tmp_path_factory.mktemp("book")
    shutil.copy(ROOT / "book" / "_config.yml", src / "_config.yml")
    shutil.copy(ROOT / "book" / "intro.md", src / "intro.md")
    (src / "_mathjax").symlink_to(mathjax.parent, target_is_directory=True)
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {"caption": "The framework", "chapters": [{"file": "math"}]},
            {"caption": "Tasks", "chapters": [{"file": "notebooks/figure"}]},
        ],
    }
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (src / "math.md").write_text(f"# Eigenvalues\n\nThe telescoping ratio\n\n{MATH}\n")
    (src / "notebooks").mkdir()
    nbformat.write(executed_notebook(), src / "notebooks" / "figure.ipynb")
    book.write_profile_page(
        "smoke", {"commit": "abc1234", "runs": 3}, src / "_generated/profile.md"
    )
    return src


@pytest.fixture(scope="module")
def built(tiny_book) -> Path:
    start = time.perf_counter()
    html = book.build(tiny_book, strict=True, repository=REPO, quiet=True)
    print(f"tiny book built in {time.perf_counter() - start:.1f} s")
    return html


def test_toc_names_the_chapters_and_reference_pages():
    files = book.toc_files(ROOT / "book")
    assert files[0] == "intro"
    assert [f for f in files if f.startswith("notebooks/")] == [
        "notebooks/01_eigenvalues_and_memory",
        "notebooks/02_models_as_dynamical_systems",
        "notebooks/03_long_memory_tasks",
        "notebooks/04_selective_tasks",
        "notebooks/05_architectural_modifications",
        "notebooks/06_exact_vs_published",
        "notebooks/07_claims",
        "notebooks/08_beyond_the_paper",
    ]
    assert files[-2:] == ["limitations", "appendix_configs"]


def test_config_never_executes_and_serves_mathjax_locally():
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    sphinx = config["sphinx"]["config"]
    assert "://" not in sphinx["mathjax_path"]
    assert sphinx["html_extra_path"] == ["_mathjax"]


def test_repository_address_or_no_buttons(monkeypatch):
    assert book.repository_url("git@github.com:someone/companion.git") == (
        "https://github.com/someone/companion"
    )
    assert book.repository_url("https://github.com/someone/companion.git/") == (
        "https://github.com/someone/companion"
    )
    monkeypatch.setenv("BOOK_REPOSITORY_URL", "")
    assert book.repository_url() is None
    config = book.resolved_config(ROOT / "book", None)
    assert config["launch_buttons"]["binderhub_url"] == ""
    assert config["repository"]["url"] == ""
    config = book.resolved_config(ROOT / "book", REPO)
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["repository"]["url"] == REPO


def test_missing_notebooks_are_named_before_building(tmp_path):
    shutil.copy(ROOT / "book" / "_toc.yml", tmp_path / "_toc.yml")
    (tmp_path / "intro.md").write_text("# Intro\n")
    with pytest.raises(book.BookError, match="notebooks/01_eigenvalues_and_memory"):
        book.build(tmp_path)


def test_profile_page(tmp_path):
    dest = book.write_profile_page(
        "quick", {"commit": "abc1234", "wall_seconds": 1500, "runs": 42}, tmp_path / "p.md"
    )
    text = dest.read_text()
    assert "**quick** profile" in text and "`abc1234`" in text and "25.0 min" in text
    assert "| runs | 42 |" in text
    assert not any(line.startswith("#") for line in text.splitlines())


def test_strict_build_renders_pages_math_figure_and_binder(built):
    for page in ("index.html", "intro.html", "math.html", "notebooks/figure.html"):
        assert (built / page).is_file(), page
    assert (built / "es5" / book.MATHJAX_ENTRY).is_file()
    intro = (built / "intro.html").read_text()
    assert "smoke" in intro and "abc1234" in intro  # the generated profile page is included
    assert r"\Lambda_i = \eta_{i-1}/\eta_i" in (built / "math.html").read_text()
    nb = (built / "notebooks" / "figure.html").read_text()
    assert "https://mybinder.org/v2/gh/example-owner/companion/main" in nb
    assert "notebooks/figure.ipynb" in nb
    assert list((built / "_images").glob("*.png"))


# --------------------------------------------------------------------------------------------
# Headless Chromium


CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
    # every host but the local server is unresolvable: a page that needs the network breaks
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (root only)."""
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(f"{CHROMIUM} missing and apt-get unavailable (needs root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = ["-o", "DPkg::Lock::Timeout=600"]
        for cmd in (
            ["apt-get", *lock, "update", "-q"],
            ["apt-get", *lock, "install", "-y", "-q", "chromium"],
        ):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.skip(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}")
    return CHROMIUM


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(built):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(built))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class DevTools:
    """The Chrome DevTools protocol over ``--remote-debugging-pipe``: JSON messages separated
    by NUL bytes, written to the browser's fd 3 and read from its fd 4."""

    def __init__(self, binary: str, profile: Path, log: Path):
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # bash moves the child's ends to fds 3 and 4 (dash cannot name fds above 9, and
        # preexec_fn is unsafe beside the server thread); from 10 up they cannot collide
        high_in = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
        high_out = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)
        for fd in (to_child, from_child):
            os.close(fd)
        redirect = f'exec "$@" 3<&{high_in} 4>&{high_out} {high_in}<&- {high_out}>&-'
        cmd = [binary, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"]
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", redirect, "bash", *cmd],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                pass_fds=(high_in, high_out),
            )
        for fd in (high_in, high_out):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params=None, session=None, timeout=30.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout=30.0) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            event = self._receive(deadline)
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self.events.append(event)


# Runs in the page after the load event: waits for MathJax's first typeset and the images.
INSPECT = """
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const images = [...document.images];
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); })));
  return {
    mathjax: window.MathJax ? (MathJax.version || null) : null,
    scripts: [...document.scripts].map(s => s.src).filter(s => s.includes('/es5/')),
    math: document.querySelectorAll('mjx-container').length,
    display: document.querySelectorAll('mjx-container[display="true"]').length,
    errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    raw: [...document.querySelectorAll('.math')].filter(
      e => !e.querySelector('mjx-container')).length,
    speech: [...document.querySelectorAll('mjx-assistive-mml')].map(e => e.textContent),
    images: images.map(i => ({src: i.currentSrc, width: i.naturalWidth, height: i.naturalHeight,
                              cls: i.className})),
  };
})()
"""


@pytest.fixture(scope="module")
def browsed(chromium, served, tmp_path_factory) -> dict:
    """Each page's inspection result and every request the browser made."""
    tmp = tmp_path_factory.mktemp("chromium")
    start = time.perf_counter()
    browser = DevTools(chromium, tmp / "profile", tmp / "chromium.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for method in ("Page.enable", "Network.enable", "Runtime.enable"):
            browser.send(method, session=session)
        pages = {}
        for page in ("intro.html", "math.html", "notebooks/figure.html"):
            browser.send("Page.navigate", {"url": served + page}, session=session)
            browser.wait_for("Page.loadEventFired", session)
            result = browser.send(
                "Runtime.evaluate",
                {"expression": INSPECT, "awaitPromise": True, "returnByValue": True},
                session=session,
            )
            assert "exceptionDetails" not in result, result["exceptionDetails"]
            pages[page] = result["result"]["value"]
        events = [e for e in browser.events if e.get("sessionId") == session]
    finally:
        browser.close()
    print(f"chromium: 3 pages in {time.perf_counter() - start:.1f} s")

    def of(method):
        return [e["params"] for e in events if e.get("method") == method]

    return {
        "base": served,
        "pages": pages,
        "requests": [p["request"]["url"] for p in of("Network.requestWillBeSent")],
        "responses": {
            p["response"]["url"]: p["response"]["status"] for p in of("Network.responseReceived")
        },
        "failed": of("Network.loadingFailed"),
        "exceptions": [
            "{url}:{lineNumber}: {text}".format(**e["exceptionDetails"])
            + " "
            + e["exceptionDetails"].get("exception", {}).get("description", "")
            for e in of("Runtime.exceptionThrown")
        ],
    }


def test_browser_renders_math_with_local_mathjax(browsed):
    for name, page in browsed["pages"].items():
        assert page["mathjax"] and page["mathjax"].startswith("3."), name
        assert page["scripts"], f"{name}: no MathJax script"
        assert all(s.startswith(browsed["base"]) for s in page["scripts"]), page["scripts"]
        assert page["math"] > 0, f"{name}: MathJax typeset nothing"
        assert page["errors"] == 0, f"{name}: MathJax errors"
        assert page["raw"] == 0, f"{name}: formulas left as TeX"
    math = browsed["pages"]["math.html"]
    assert math["display"] == 1
    assert any("Λ" in s and "η" in s for s in math["speech"]), math["speech"]


def test_browser_decodes_the_notebook_figure(browsed):
    images = browsed["pages"]["notebooks/figure.html"]["images"]
    figures = [i for i in images if "/_images/" in i["src"]]
    assert figures, images
    assert (figures[0]["width"], figures[0]["height"]) == (48, 32)
    for image in images:
        assert image["width"] > 0 and image["height"] > 0, image


def test_browser_needed_no_network(browsed):
    base = browsed["base"]
    outside = [u for u in browsed["requests"] if not u.startswith((base, "data:"))]
    assert not outside, outside
    assert any(u.startswith(base + "es5/" + book.MATHJAX_ENTRY) for u in browsed["requests"])
    assert any(u.startswith(base + "es5/output/chtml/fonts/") for u in browsed["requests"])
    assert not browsed["failed"], browsed["failed"]
    # the browser asks for /favicon.ico by itself; the book sets none
    bad = {u: s for u, s in browsed["responses"].items() if s >= 400 and u != base + "favicon.ico"}
    assert not bad, bad
    assert not browsed["exceptions"], browsed["exceptions"]
