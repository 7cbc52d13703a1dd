"""Render a :class:`~sal_plugins.tree.SearchTree` as one self-contained HTML page (no network)."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sal_plugins.tree import SearchTree

__all__ = ["render_tree_html"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
ul.tree, ul.tree ul {{ list-style: none; padding-left: 1.2rem; border-left: 1px dashed #bbb; }}
li > .node {{ display: inline-block; margin: 2px 0; padding: 2px 6px; border-radius: 4px;
  border: 1px solid #ccc; white-space: pre-wrap; max-width: 60rem; }}
.selected > .node {{ border: 2px solid #2a7; background: #eafaf1; }}
.pruned > .node {{ color: #999; background: #f4f4f4; }}
.failed > .node {{ background: #fdd; }}
.score {{ font-weight: bold; margin-right: .5em; }}
.meta {{ color: #666; font-size: .85em; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="problem"><b>Problem:</b> {problem}</p>
<p class="legend">green: selected path &middot; grey: pruned &middot; red: failed &middot; ✓ finished</p>
<ul class="tree" id="tree">{body}</ul>
<script type="application/json" id="tree-data">{data}</script>
</body></html>
"""


def _node_html(tree: SearchTree, node_id: int) -> str:
    node = tree[node_id]
    classes = []
    if node.selected:
        classes.append("selected")
    if node.pruned:
        classes.append("pruned")
    if node.error:
        classes.append("failed")
    score = "" if node.score is None else f'<span class="score">{node.score:.3f}</span>'
    mark = " ✓" if node.finished else ""
    text = html.escape(node.text or node.error or "")
    meta = f'<span class="meta">#{node.id} {node.kind} r{node.round}{mark}</span>'
    children = "".join(_node_html(tree, child.id) for child in tree.children(node_id))
    nested = f"<ul>{children}</ul>" if children else ""
    return (
        f'<li class="{" ".join(classes)}" data-node="{node.id}">'
        f'<div class="node">{score}{text} {meta}</div>{nested}</li>'
    )


def render_tree_html(tree: SearchTree, *, title: str) -> str:
    """The page as a string."""
    body = "".join(_node_html(tree, child.id) for child in tree.children(0))
    data = json.dumps(tree.to_dict(), ensure_ascii=False).replace("</", "<\\/")
    return _PAGE.format(
        title=html.escape(title), problem=html.escape(tree.problem), body=body, data=data
    )
