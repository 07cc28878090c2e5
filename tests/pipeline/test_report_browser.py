"""report.html, the product's front page, opened in a real browser (headless Chromium driven by
Playwright): every image loads, no console errors, the verdict banners are visible above the fold,
and the tables hold the figures of the evaluation JSONs. Uses the tiny run of conftest's `pipeline`.

Chromium comes from the system (Debian: ``apt-get install chromium``; .ci/run installs it), or
GENSIS_CHROMIUM names a binary; without one this test says so and skips: it is the only test that
needs a program outside Python.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

VIEWPORT = {"width": 1280, "height": 800}
# Chromium on a machine without a network: no background connections, no sandbox as root.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = os.environ.get("GENSIS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no Chromium on this machine (apt-get install chromium, or set GENSIS_CHROMIUM)")
    return found


@pytest.fixture
def served(pipeline):
    """The run folder over HTTP on localhost, as a user's browser would load it from a server."""
    _, result = pipeline
    root = Path(result["out"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()


def test_the_report_in_a_real_browser(served) -> None:
    from playwright.sync_api import sync_playwright

    root, url = served
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=FLAGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("requestfailed", lambda r: errors.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: errors.append(f"{r.url}: HTTP {r.status}") if r.status >= 400 else None)
        page.goto(url, wait_until="load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
        banners = page.eval_on_selector_all(
            ".verdicts li",
            "els => els.map(e => {const r = e.getBoundingClientRect(); "
            "return [e.className, e.innerText, r.top, r.bottom, r.height]})",
        )
        cells = page.eval_on_selector_all("table tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")
        shot = os.environ.get("GENSIS_REPORT_SCREENSHOT")  # docs/images/report_browser.png is made so
        if shot:
            page.screenshot(path=shot, full_page=True)
        browser.close()
    assert not errors, errors
    # every image the page names loads, and they are the run's pictures and curves
    assert images and all(width > 0 for _, width in images), images
    srcs = {src for src, _ in images}
    assert {"pictures/views.png", "pictures/interpolations.png", "plots/loss.png"} <= srcs
    # one banner per stage, each coloured by its status and wholly inside the first screen
    assert [b[0] for b in banners] and len(banners) == 3
    for cls, text, top, bottom, height in banners:
        assert cls in ("ok", "warning", "none") and height > 0 and 0 <= top and bottom <= VIEWPORT["height"], text
    assert [t.split(",")[1].split(":")[0].strip() for _, t, *_ in banners] == ["stage 1", "stage 2", "stage 3"]
    # the evaluation table holds each encoder's figures as the evaluation JSONs give them
    rows = {r[0]: r for r in cells if r}
    for name, label in (("dino", "DINO (stage 1)"), ("gen-dino", "Gen-DINO (stage 3)")):
        r = json.loads((root / "eval" / f"{name}.json").read_text())
        expected = [label, str(r["trained_steps"])] + [
            f"{r['knn_top1'][k]:.2f}" for k in sorted(r["knn_top1"], key=int)
        ]
        assert rows[label][: len(expected)] == expected and rows[label][-1] == f"{r['linear']['top1']:.2f}"
