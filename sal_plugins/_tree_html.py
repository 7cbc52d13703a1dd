"""Render a :class:`~sal_plugins.tree.SearchTree` as one self-contained HTML page (no network).

The page has three parts: the selected solution step by step with its scores; an SVG overview of
the whole tree (one dot per node, coloured by score, the selected path drawn thick, pruned nodes
grey); and the tree itself as nested collapsible rows with every node's text, score and fate.
Clicking a dot opens and scrolls to its row. Everything (styles, script, data) is inline, so the
file opens offline and can be attached to a bug report as is.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sal_plugins.tree import Node, SearchTree

__all__ = ["render_tree_html"]

_OPEN_ALL_UP_TO = 200
"""Trees with at most this many nodes start fully expanded; larger ones show the selected path."""

_STYLE = """
:root { --ok: #1b8a4b; --bad: #c0392b; --muted: #8a8a8a; --line: #d0d0d0; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d1d1f;
  background: #fafafa; }
header { padding: 1rem 1.5rem .5rem; background: #fff; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.25rem; margin: 0 0 .4rem; }
h2 { font-size: 1rem; margin: 1.2rem 0 .5rem; }
main { padding: 0 1.5rem 2rem; }
.problem { white-space: pre-wrap; margin: .3rem 0; }
.stats span { display: inline-block; margin-right: 1.2rem; color: #444; font-size: .9rem; }
.legend { font-size: .85rem; color: #555; margin: .4rem 0; }
.legend i { display: inline-block; width: .8em; height: .8em; border-radius: 50%;
  vertical-align: middle; margin: 0 .25em 0 .8em; }
ol.path { padding-left: 1.5rem; margin: 0; }
ol.path li { margin: .3rem 0; white-space: pre-wrap; }
.badge { display: inline-block; font-size: .75rem; padding: 0 .4em; border-radius: 3px;
  margin-left: .3em; background: #eee; color: #333; white-space: nowrap; }
.badge.sel { background: var(--ok); color: #fff; }
.badge.pruned { background: #ddd; color: #666; }
.badge.fail { background: var(--bad); color: #fff; }
.badge.done { background: #e3f1e8; color: var(--ok); }
.score { font-variant-numeric: tabular-nums; font-weight: 600; display: inline-block;
  min-width: 3.2em; }
.bar { display: inline-block; width: 48px; height: 8px; background: #eee; border-radius: 4px;
  vertical-align: middle; margin-right: .4em; overflow: hidden; }
.bar b { display: block; height: 100%; }
#overview { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5rem;
  overflow: auto; max-height: 55vh; }
#overview svg { display: block; min-width: 100%; }
#overview circle { cursor: pointer; stroke: #fff; stroke-width: 1; }
#overview circle.sel { stroke: var(--ok); stroke-width: 2.5; }
#overview circle.pruned { opacity: .45; }
#overview line { stroke: #c8c8c8; stroke-width: 1; }
#overview line.sel { stroke: var(--ok); stroke-width: 3; }
.controls button { font: inherit; font-size: .85rem; margin: 0 .4rem .4rem 0; padding: .2rem .6rem;
  border: 1px solid #bbb; background: #fff; border-radius: 4px; cursor: pointer; }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 1.1rem; }
ul.tree { padding-left: 0; }
ul.tree ul { border-left: 1px dashed #ccc; }
li.node { margin: 2px 0; }
li.node > details > summary, li.node > .leaf { display: block; padding: 2px 6px;
  border: 1px solid #ddd; border-radius: 4px; background: #fff; cursor: pointer; }
li.node > .leaf { cursor: default; margin-left: 1.05rem; }
li.node.selected > details > summary, li.node.selected > .leaf { border: 2px solid var(--ok);
  background: #eefaf2; }
li.node.pruned > details > summary, li.node.pruned > .leaf { color: var(--muted);
  background: #f3f3f3; }
li.node.failed > details > summary, li.node.failed > .leaf { background: #fdecea; }
li.node.flash > details > summary, li.node.flash > .leaf { outline: 3px solid #f5b041; }
.text { white-space: pre-wrap; display: block; margin: 2px 0 0; font-family: ui-monospace,
  "SFMono-Regular", Menlo, monospace; font-size: .85rem; }
.meta { color: #666; font-size: .8rem; margin-left: .5em; }
summary::before { content: "\\25B8"; display: inline-block; width: 1em; color: #666; }
details[open] > summary::before { content: "\\25BE"; }
body.hide-pruned li.node.pruned { display: none; }
body.path-only li.node:not(.selected) { display: none; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var body = document.body;
  function all(selector) { return Array.prototype.slice.call(document.querySelectorAll(selector)); }
  function setOpen(open) { all("#tree details").forEach(function (d) { d.open = open; }); }
  document.getElementById("expand-all").addEventListener("click", function () { setOpen(true); });
  document.getElementById("collapse-all").addEventListener("click", function () { setOpen(false); });
  document.getElementById("toggle-pruned").addEventListener("click", function () {
    body.classList.toggle("hide-pruned");
  });
  document.getElementById("toggle-path").addEventListener("click", function () {
    body.classList.toggle("path-only");
    if (body.classList.contains("path-only")) {
      all("#tree li.selected > details").forEach(function (d) { d.open = true; });
    }
  });
  function reveal(id) {
    var item = document.getElementById("node-" + id);
    if (!item) { return; }
    for (var el = item.parentElement; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
    item.scrollIntoView({ block: "center" });
    item.classList.add("flash");
    setTimeout(function () { item.classList.remove("flash"); }, 1500);
  }
  all("#overview circle").forEach(function (c) {
    c.addEventListener("click", function () { reveal(c.getAttribute("data-node")); });
  });
  var box = document.getElementById("overview");
  var chosen = all("#overview circle.sel");
  if (chosen.length && box.scrollWidth > box.clientWidth) {
    var last = chosen[chosen.length - 1].getBoundingClientRect();
    var frame = box.getBoundingClientRect();
    box.scrollLeft += last.left - frame.left - box.clientWidth / 2;
  }
  var data = JSON.parse(document.getElementById("tree-data").textContent);
  var selected = data.nodes.filter(function (n) { return n.selected; }).length;
  body.setAttribute("data-ready", "1");
  body.setAttribute("data-selected-count", String(selected));
})();
"""


def _score_colour(score: float | None) -> str:
    """Red (0) through amber to green (1); grey when unscored. Scores outside [0, 1] are clamped."""
    if score is None:
        return "#b0b0b0"
    clamped = min(1.0, max(0.0, score))
    return f"hsl({round(120 * clamped)}, 65%, 42%)"


def _classes(node: Node) -> str:
    flags = [
        ("selected", node.selected),
        ("pruned", node.pruned),
        ("failed", node.error is not None),
    ]
    return " ".join(["node", *(name for name, on in flags if on)])


def _badges(node: Node) -> str:
    badges = []
    if node.selected:
        badges.append('<span class="badge sel">selected</span>')
    if node.pruned:
        badges.append('<span class="badge pruned">pruned</span>')
    if node.finished:
        badges.append('<span class="badge done">finished</span>')
    if node.truncated:
        badges.append('<span class="badge">cut at max_tokens</span>')
    if node.error is not None:
        badges.append('<span class="badge fail">failed</span>')
    return "".join(badges)


def _score_html(node: Node) -> str:
    if node.score is None:
        return '<span class="score">&ndash;</span>'
    width = round(100 * min(1.0, max(0.0, node.score)))
    return (
        f'<span class="bar"><b style="width:{width}%;background:{_score_colour(node.score)}"></b>'
        f'</span><span class="score">{node.score:.3f}</span>'
    )


def _row(node: Node) -> str:
    text = html.escape(node.text or node.error or "")
    shown = () if node.step_scores is None else node.step_scores[-6:]
    steps = " ".join(f"{s:.2f}" for s in shown)
    if node.step_scores is not None and len(node.step_scores) > len(shown):
        steps = "&hellip; " + steps
    step_scores = f" &middot; step scores {steps}" if steps else ""
    meta = (
        f'<span class="meta">#{node.id} &middot; {html.escape(node.kind)} &middot; round '
        f"{node.round}{step_scores}</span>"
    )
    critique = ""
    if node.critique:
        critique = f'<span class="meta">critique: {html.escape(node.critique)}</span>'
    return f'{_score_html(node)}{meta}{_badges(node)}<span class="text">{text}</span>{critique}'


def _tree_items(
    tree: SearchTree, children: dict[int, list[int]], node_id: int, open_all: bool
) -> str:
    # Iterative, so deep trees (many steps) cannot hit Python's recursion limit.
    out: list[str] = []
    stack: list[tuple[int, bool]] = [(child, False) for child in reversed(children[node_id])]
    while stack:
        current, closing = stack.pop()
        node = tree[current]
        kids = children[current]
        if closing:
            out.append("</ul></details></li>")
            continue
        head = f'<li class="{_classes(node)}" id="node-{node.id}" data-node="{node.id}">'
        if not kids:
            out.append(f'{head}<div class="leaf">{_row(node)}</div></li>')
            continue
        opened = " open" if open_all or node.selected else ""
        out.append(f"{head}<details{opened}><summary>{_row(node)}</summary><ul>")
        stack.append((current, True))
        stack.extend((child, False) for child in reversed(kids))
    return "".join(out)


def _overview_svg(tree: SearchTree, children: dict[int, list[int]]) -> str:
    """A top-down layout: leaves spread evenly, parents centred over their children."""
    depth = {0: 0}
    order: list[int] = []
    stack = [0]
    while stack:  # pre-order: parents before children
        current = stack.pop()
        order.append(current)
        for child in reversed(children[current]):
            depth[child] = depth[current] + 1
            stack.append(child)
    x: dict[int, float] = {}
    next_leaf = 0
    for current in order:
        if not children[current]:
            x[current] = next_leaf
            next_leaf += 1
    for current in reversed(order):
        if children[current]:
            xs = [x[c] for c in children[current]]
            x[current] = (min(xs) + max(xs)) / 2
    leaves = max(next_leaf, 1)
    levels = max(depth.values()) + 1
    # Fit up to ~150 leaves in the page width; wider trees scroll (centred on the selected path).
    gap_x = max(7.0, min(18.0, 1100.0 / leaves))
    gap_y, margin = 44.0, 14.0
    width = max(leaves * gap_x + 2 * margin, 320.0)
    height = (levels - 1) * gap_y + 2 * margin
    offset = (width - (leaves - 1) * gap_x) / 2
    small = min(5.0, gap_x / 2.4)

    def position(node_id: int) -> tuple[float, float]:
        return (offset + x[node_id] * gap_x, margin + depth[node_id] * gap_y)

    lines, dots = [], []
    for node in tree.nodes[1:]:
        if node.parent is None:
            continue
        (x1, y1), (x2, y2) = position(node.parent), position(node.id)
        selected = node.selected and (node.parent == 0 or tree[node.parent].selected)
        css = ' class="sel"' if selected else ""
        lines.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"{css}/>')
    for node in tree.nodes:
        cx, cy = position(node.id)
        if node.id == 0:
            dots.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="#555" data-node="0">'
                "<title>problem</title></circle>"
            )
            continue
        css = " ".join(
            c for c in ("sel" if node.selected else "", "pruned" if node.pruned else "") if c
        )
        score = "unscored" if node.score is None else f"score {node.score:.3f}"
        snippet = " ".join(node.text.split())[:120]
        label = html.escape(f"#{node.id} round {node.round}, {score}: {snippet}")
        fill = "#c0392b" if node.error is not None else _score_colour(node.score)
        radius = small + 1.5 if node.selected else small
        dots.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" fill="{fill}" class="{css}" '
            f'data-node="{node.id}"><title>{label}</title></circle>'
        )
    return (
        f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="search tree overview">{"".join(lines)}{"".join(dots)}</svg>'
    )


def _selected_path(tree: SearchTree) -> str:
    selected_parents = {n.parent for n in tree.nodes[1:] if n.selected}
    chosen = [n for n in tree.nodes[1:] if n.selected and n.id not in selected_parents]
    if not chosen:
        return "<p>No solution was selected.</p>"
    items = []
    for node in tree.path(chosen[0].id):
        score = "" if node.score is None else f'<span class="score">{node.score:.3f}</span> '
        items.append(
            f'<li data-node="{node.id}">{score}<span class="step">{html.escape(node.text)}</span></li>'
        )
    return f'<ol class="path" id="selected-path">{"".join(items)}</ol>'


def _stats(tree: SearchTree) -> str:
    nodes = tree.nodes[1:]
    rounds = 1 + max((n.round for n in nodes), default=-1)
    facts = [
        f"{len(nodes)} nodes",
        f"{rounds} rounds",
        f"{sum(n.finished for n in nodes)} finished",
        f"{sum(n.pruned for n in nodes)} pruned",
        f"{sum(n.error is not None for n in nodes)} failed",
    ]
    return "".join(f"<span>{fact}</span>" for fact in facts)


def render_tree_html(tree: SearchTree, *, title: str) -> str:
    """The page as a string (see the module docstring)."""
    children: dict[int, list[int]] = defaultdict(list)
    for node in tree.nodes[1:]:
        if node.parent is not None:
            children[node.parent].append(node.id)
    open_all = len(tree) - 1 <= _OPEN_ALL_UP_TO
    data = json.dumps(tree.to_dict(), ensure_ascii=False).replace("<", "\\u003c")
    legend = (
        '<p class="legend">dot colour: score<i style="background:hsl(0,65%,42%)"></i>0'
        '<i style="background:hsl(60,65%,42%)"></i>0.5<i style="background:hsl(120,65%,42%)"></i>1'
        '<i style="background:#b0b0b0"></i>unscored &middot; thick green: selected path &middot; '
        "faded: pruned &middot; click a dot to jump to its step</p>"
    )
    controls = (
        '<div class="controls"><button id="expand-all">expand all</button>'
        '<button id="collapse-all">collapse all</button>'
        '<button id="toggle-pruned">hide/show pruned</button>'
        '<button id="toggle-path">selected path only</button></div>'
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f'<p class="problem"><b>Problem:</b> {html.escape(tree.problem)}</p>'
        f'<p class="stats">{_stats(tree)}</p></header><main>'
        f"<h2>Selected solution</h2>{_selected_path(tree)}"
        f'<h2>Overview</h2>{legend}<div id="overview">{_overview_svg(tree, children)}</div>'
        f'<h2>All nodes</h2>{controls}<ul class="tree" id="tree">'
        f"{_tree_items(tree, children, 0, open_all)}</ul></main>"
        f'<script type="application/json" id="tree-data">{data}</script>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
