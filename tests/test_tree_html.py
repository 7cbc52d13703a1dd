"""The search-tree page: self-contained HTML, checked as text and in headless Chromium.

The browser tests drive Debian's ``chromium`` through Playwright (``pip install playwright``; the
system browser is used, Playwright's own browser download is not needed). Off CI they are skipped
when either is missing; on CI (``CI`` set) a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sal_plugins as sal
from sal_plugins import cli
from sal_plugins.results import SearchResult
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import ScriptedVerifier

CHROMIUM = os.environ.get("SAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _solutions(count: int, steps: int) -> list[str]:
    return [
        "\n\n".join(
            [f"Step {k}: {a} + {k} = {a + k}" for k in range(1, steps)]
            + [f"The answer is $\\boxed{{{a}}}$."]
        )
        for a in range(count)
    ]


def _score(problem: str, step: str) -> float:
    # Deterministic and uneven, so pruning has something to choose between.
    return (sum(map(ord, step)) % 97) / 96


def beam_search_result(n: int = 8, steps: int = 4, max_steps: int = 10) -> SearchResult:
    search = sal.BeamSearch(
        solver=ScriptedSolver(_solutions(n, steps)),
        verifier=ScriptedVerifier(_score),
        n=n,
        beam_width=4 if n >= 8 else 2,
        max_steps=max_steps,
        seed=0,
    )
    return search.run("Pick a number <n> & add 1, 2, 3 to it.")


# --- the page as text -------------------------------------------------------------------------


def test_page_is_self_contained_and_escaped() -> None:
    result = beam_search_result()
    result.tree[1].text = "</script><script>alert(1)</script>"
    page = result.tree.to_html(title="t <1>")
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and " src=" not in page
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page
    assert "<title>t &lt;1&gt;</title>" in page
    assert "Pick a number &lt;n&gt; &amp; add" in page


def test_page_shows_every_node_and_the_selected_path() -> None:
    result = beam_search_result()
    page = result.tree.to_html()
    for node in result.tree.nodes[1:]:
        assert f'id="node-{node.id}"' in page
    assert result.best is not None
    path_ids = [n.id for n in result.tree.path(result.best.node_id)]
    assert page.count('class="node selected') == len(path_ids)
    assert page.count("<line x1=") == len(result.tree) - 1
    assert page.count('class="sel"/>') == len(path_ids)  # the selected edges of the overview
    pruned = sum(n.pruned for n in result.tree.nodes)
    assert pruned > 0 and page.count("badge pruned") == pruned


def test_large_trees_start_collapsed_except_the_selected_path() -> None:
    result = beam_search_result(n=64, steps=6)
    assert len(result.tree) > 300
    page = result.tree.to_html()
    assert result.best is not None
    inner = [n for n in result.tree.path(result.best.node_id) if result.tree.children(n.id)]
    assert page.count("<details open>") == len(inner)


# --- the page in a real browser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: pip install playwright")
        pytest.skip("playwright is not installed (pip install playwright)")
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class LoadedPage:
    """A page opened from a file, with the console errors and failed requests it produced."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1200, "height": 1400})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=10_000)


def test_sal_run_tree_page_renders_in_chromium(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page_file = tmp_path / "out.html"
    argv = [
        "run",
        "What is 23 + 48?",
        "--strategy",
        "beam-search",
        "--n",
        "4",
        "--tree",
        str(page_file),
        "--solver-factory",
        f"{__name__}:fake_solver",
        "--verifier-factory",
        f"{__name__}:fake_verifier",
    ]
    assert cli.main(argv) == 0
    capsys.readouterr()
    loaded = LoadedPage(browser, page_file)
    page = loaded.page
    assert loaded.errors == []
    assert loaded.requests == [page_file.as_uri()]  # nothing fetched beyond the file itself
    steps = page.locator("#selected-path li .step").all_inner_texts()
    assert steps == ["23 + 48 = 71", "The answer is $\\boxed{71}$."]
    selected_rows = page.locator("#tree li.node.selected")
    assert selected_rows.count() == 2
    for index in range(2):
        assert selected_rows.nth(index).is_visible()
    assert page.locator("#overview circle.sel").count() == 2
    page.screenshot(path=str(tmp_path / "page.png"))


def fake_solver() -> ScriptedSolver:
    return ScriptedSolver(
        [
            "23 + 48 = 71\n\nThe answer is $\\boxed{71}$.",
            "23 + 48 = 61\n\nThe answer is $\\boxed{61}$.",
        ]
    )


def fake_verifier() -> ScriptedVerifier:
    return ScriptedVerifier(lambda problem, step: 0.1 if "61" in step else 0.9)


def test_controls_and_dots_in_chromium(browser: Any, tmp_path: Path) -> None:
    result = beam_search_result(n=64, steps=6)
    page_file = tmp_path / "big.html"
    page_file.write_text(result.tree.to_html(), encoding="utf-8")
    loaded = LoadedPage(browser, page_file)
    page = loaded.page
    assert loaded.errors == []
    assert result.best is not None
    assert page.get_attribute("body", "data-selected-count") == str(
        len(result.tree.path(result.best.node_id))
    )
    # A deep node off the selected path starts hidden inside collapsed rows ...
    hidden = next(
        n
        for n in reversed(result.tree.nodes)
        if not n.selected and len(n.steps) >= 3 and n.parent and not result.tree[n.parent].selected
    )
    row = page.locator(f"#node-{hidden.id}")
    assert not row.is_visible()
    # ... and clicking its dot in the overview opens the rows above it.
    page.locator(f"#overview circle[data-node='{hidden.id}']").dispatch_event("click")
    assert row.is_visible()
    # "selected path only" hides every other row; "collapse all" closes the rows.
    page.click("#toggle-path")
    assert not row.is_visible()
    assert page.locator("#tree li.node.selected").first.is_visible()
    page.click("#toggle-path")
    page.click("#collapse-all")
    assert page.locator("#tree details[open]").count() == 0
    page.click("#expand-all")
    assert page.locator("#tree details:not([open])").count() == 0
    assert loaded.errors == []
