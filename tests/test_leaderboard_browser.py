"""index.html in a real headless Chromium: clicking a column header sorts the rows.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages separated by NUL bytes on file descriptors 3 and 4), so the test needs no chromedriver
and no Python package. The click is a real mouse event at the header's position. Outside CI a
missing Chromium skips the test with the reason; under ``CI=true`` it fails
(``scripts/ci_install_browser.sh`` installs Debian's chromium).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from leaderboard_helpers import make_board, make_record, populate

from leaderboard.render import render_outputs, write_outputs
from leaderboard.validate import validate_tree

pytestmark = pytest.mark.usefixtures("pinned_clip")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]
TABLE = "mvtec-caption-cpu--v1-mvtec_ad-detection-comparable"


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but no chromium on PATH: run scripts/ci_install_browser.sh before the tests")
    pytest.skip("chromium not installed (scripts/ci_install_browser.sh installs it; in CI this test must run)")


class Browser:
    """The smallest DevTools-protocol client: send a command, wait for its answer, keep the events."""

    def __init__(self, binary: str, user_data_dir: Path, timeout: float = 30.0):
        self.timeout = timeout
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # bash maps our pipe ends to the fds 3 (commands in) and 4 (answers out) Chromium expects
        # (dash cannot: it accepts only one-digit fds, and ours are often higher).
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.process = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", script, binary, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer["result"]
                if "method" in answer:
                    self.events.append(answer)
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no answer to {method} within {self.timeout}s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
            self._buffer += chunk

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.send("Network.enable")
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + self.timeout
        while self.evaluate("document.readyState + ' ' + location.href") != f"complete {url}":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real left click at the centre of the element (scrolled into view first)."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                            "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 0 if kind == "mouseMoved" else 1})

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture()
def chromium() -> str:
    return chromium_binary()


@pytest.fixture()
def page(tmp_path: Path, chromium: str) -> Path:
    records = [make_record(s, v, c) for s, v in (("axf", "1"), ("cutpaste", "2"), ("perlin", "1"), (None, "0"))
               for c in ("bottle", "cable")]
    root = populate(make_board(tmp_path), tmp_path, records)
    write_outputs(root, render_outputs(validate_tree(root)))
    return root / "index.html"


def _column(browser: Browser, header: str) -> tuple[int, list[float | None], list[str]]:
    index = browser.evaluate(f"Array.from(document.querySelectorAll('#{TABLE} thead th'))"
                             f".findIndex(th => th.textContent.trim() === {json.dumps(header)})")
    assert index >= 0, f"no column {header!r}"
    cells = browser.evaluate(f"Array.from(document.querySelectorAll('#{TABLE} tbody tr'))"
                             f".map(tr => [tr.cells[{index}].dataset.value, tr.cells[0].textContent])")
    return index, [float(v) if v else None for v, _ in cells], [label for _, label in cells]


def _ascending(values: list[float | None]) -> list[float | None]:
    return sorted(v for v in values if v is not None) + [v for v in values if v is None]


def test_clicking_a_header_sorts_the_rows(chromium: str, page: Path, tmp_path: Path) -> None:
    browser = Browser(chromium, tmp_path / "chromium-profile")
    try:
        url = page.resolve().as_uri()
        browser.open(url)
        index, before, labels_before = _column(browser, "unet P-AP")
        assert len(before) == 4 and before != _ascending(before), "the initial order must not already be sorted"

        browser.click(f"#{TABLE} thead th:nth-child({index + 1})")
        _, after, labels_after = _column(browser, "unet P-AP")
        assert after == _ascending(before) and after != before
        assert sorted(labels_after) == sorted(labels_before)  # the same rows, reordered whole
        assert browser.evaluate(f"document.querySelectorAll('#{TABLE} thead th')[{index}]"
                                ".getAttribute('aria-sort')") == "ascending"

        browser.click(f"#{TABLE} thead th:nth-child({index + 1})")
        _, descending, _ = _column(browser, "unet P-AP")
        present = [v for v in before if v is not None]
        assert descending == sorted(present, reverse=True) + [None] * (len(before) - len(present))

        text_index, _, _ = _column(browser, "synthesizer")
        browser.click(f"#{TABLE} thead th:nth-child({text_index + 1})")
        _, _, by_name = _column(browser, "synthesizer")
        assert by_name == sorted(labels_before, key=str.lower)

        assert browser.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        requested = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
        assert requested and all(u.startswith("file://") for u in requested), requested  # nothing from the network
    finally:
        browser.close()
