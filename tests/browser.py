"""Headless Chromium for the book tests: find it, serve a built book, read pages.

Debian's chromium (``make test-deps`` installs it) is driven over the DevTools protocol
through ``--remote-debugging-pipe`` with the standard library only. Every host but the local
server is unresolvable, so a page that needs the network breaks. :func:`browse` loads pages and
returns, for each, what MathJax typeset and which images decoded, plus every request made.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import json
import os
import select
import subprocess
import threading
import time
from pathlib import Path

import pytest

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
    """Debian's chromium; a test that needs it fails (not skips) where it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test-deps` installs it (apt-get, root)")
    return CHROMIUM


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on a free localhost port; yields the base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
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
INSPECT = r"""
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
                              shown: i.getBoundingClientRect().width, cls: i.className})),
    // every heading of the article with what stands between it and the next heading
    sections: (() => {
      const article = document.querySelector('article') || document.body;
      const heads = [...article.querySelectorAll('h1, h2, h3, h4')];
      return heads.map((h, k) => {
        const next = heads[k + 1];
        const range = document.createRange();
        range.setStartAfter(h);
        if (next) { range.setEndBefore(next); } else { range.setEndAfter(article.lastChild); }
        const part = range.cloneContents();
        return {text: h.textContent.replace('#', '').trim(), level: h.tagName,
                images: part.querySelectorAll('img').length,
                tables: part.querySelectorAll('table').length,
                words: part.textContent.trim().split(/\s+/).filter(w => w).length};
      });
    })(),
    text: (document.querySelector('article') || document.body).innerText,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    links: [...document.querySelectorAll('article a[href]')].map(a => a.getAttribute('href')),
  };
})()
"""


def browse(binary: str, base: str, pages: list[str], tmp: Path) -> dict:
    """Load each page of the site at ``base``; returns each page's inspection result and every
    request, response, failure and page exception the browser saw."""
    browser = DevTools(binary, tmp / "profile", tmp / "chromium.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for method in ("Page.enable", "Network.enable", "Runtime.enable"):
            browser.send(method, session=session)
        results = {}
        for page in pages:
            browser.send("Page.navigate", {"url": base + page}, session=session)
            browser.wait_for("Page.loadEventFired", session)
            result = browser.send(
                "Runtime.evaluate",
                {"expression": INSPECT, "awaitPromise": True, "returnByValue": True},
                session=session,
            )
            assert "exceptionDetails" not in result, result["exceptionDetails"]
            results[page] = result["result"]["value"]
        events = [e for e in browser.events if e.get("sessionId") == session]
    finally:
        browser.close()

    def of(method):
        return [e["params"] for e in events if e.get("method") == method]

    return {
        "base": base,
        "pages": results,
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


def outside_requests(browsed: dict) -> list[str]:
    """Requests that left the local server."""
    return [u for u in browsed["requests"] if not u.startswith((browsed["base"], "data:"))]


def bad_responses(browsed: dict) -> dict:
    """Responses of status 400 or more, except the browser's own request for /favicon.ico."""
    base = browsed["base"]
    return {u: s for u, s in browsed["responses"].items() if s >= 400 and u != base + "favicon.ico"}
