"""The pages people read, in a real browser: the model card (served and as a file) and /docs.

Debian's chromium, driven by Playwright, against `census-pipeline serve` on the session's
blessed model. Every request that leaves 127.0.0.1 is blocked and recorded, so the pages are
shown to work with no network (no CDN). Each page must decode every image, log no console
error, fit 1280 px without horizontal scrolling, and (the card) have table-of-contents links
that land; on /docs, "Try it out" for POST /predict must return a label. Screenshots go to
test-artifacts/browser/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from live_server import serving

from census_pipeline.config import Params

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path(os.environ.get("CENSUS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH = 1280


@dataclass
class Watch:
    """What a page did that it should not: console errors, uncaught errors, outside requests."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(carded_project: Params, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("browser")
    with serving(carded_project, folder, settings={"prediction_log": "false"}) as started:
        yield started.url


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Watch]]:
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    watch = Watch()

    def only_local(route: Any) -> None:
        target = route.request.url
        if target.startswith(("http://127.0.0.1", "file://", "data:", "blob:")):
            route.continue_()
        else:
            watch.outside.append(target)
            route.abort()

    context.route("**/*", only_local)
    opened = context.new_page()
    opened.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda error: watch.errors.append(str(error)))
    yield opened, watch
    context.close()


def _check_layout(page: Any, watch: Watch, name: str) -> None:
    """Images decoded, no horizontal overflow, nothing fetched from outside, no errors."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.alt || i.src.slice(0, 60), i.naturalWidth])"
    )
    assert [alt for alt, width in images if width == 0] == [], "images not decoded"
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == WIDTH, f"{name}: {widths[0]} px wide at {WIDTH} px"
    assert watch.outside == [], f"{name} reached outside: {watch.outside}"
    assert watch.errors == [], f"{name} logged errors: {watch.errors}"


def _check_card(page: Any, watch: Watch, name: str) -> None:
    page.wait_for_load_state("load")
    images = page.evaluate("document.images.length")
    assert images >= 9, "the card's figures are missing"
    _check_layout(page, watch, name)
    targets = page.evaluate(
        "Array.from(document.querySelectorAll('a[href^=\"#\"]')).map(a => a.getAttribute('href'))"
    )
    assert len(targets) >= 12
    missing = [t for t in targets if not page.evaluate(f"!!document.getElementById('{t[1:]}')")]
    assert missing == [], f"table-of-contents links without a target: {missing}"
    last = targets[-1]
    page.click(f"a[href='{last}']")
    page.wait_for_function(f"location.hash === '{last}'")
    top = page.evaluate(f"document.getElementById('{last[1:]}').getBoundingClientRect().top")
    assert -2 <= top < 50, f"{last} did not scroll into view (top at {top} px)"


def test_the_served_model_card_renders(page: tuple[Any, Watch], server: str) -> None:
    opened, watch = page
    response = opened.goto(f"{server}/model-card")
    assert response is not None and response.status == 200
    _check_card(opened, watch, "model-card-served")


def test_the_card_file_renders(page: tuple[Any, Watch], carded_project: Params) -> None:
    opened, watch = page
    opened.goto(carded_project.paths.model_card_html.as_uri())
    _check_card(opened, watch, "model-card-file")


def test_docs_try_it_out_returns_a_label(page: tuple[Any, Watch], server: str) -> None:
    opened, watch = page
    opened.goto(f"{server}/docs")
    operation = opened.locator("#operations-prediction-predict_predict_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    predict = f"{server}/predict"
    with opened.expect_response(lambda r: r.url.split("?")[0] == predict) as answer:
        operation.get_by_role("button", name="Execute").click()
    assert answer.value.status == 200
    body = json.loads(answer.value.text())
    assert body["label"] in (">50K", "<=50K")
    shown = operation.locator(".live-responses-table .response .microlight").first
    shown.wait_for()
    assert '"label"' in shown.inner_text()
    _check_layout(opened, watch, "docs-try-it-out")


def test_redoc_renders_without_network(page: tuple[Any, Watch], server: str) -> None:
    opened, watch = page
    opened.goto(f"{server}/redoc")
    opened.locator("h2", has_text="Predict for one census record").first.wait_for()
    _check_layout(opened, watch, "redoc")
