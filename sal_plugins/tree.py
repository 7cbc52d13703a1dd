"""The search tree: every node a search expanded, with its scores, parent and fate.

The driver adds every node it generates and records its scores; strategies mark nodes (pruned,
look-ahead scores), may split a whole solution into a chain of step nodes
(:meth:`SearchTree.step_chain`; no text is generated) and record their choices
(:meth:`SearchTree.choose`). Node 0 is the root (the problem, no steps). The rules that turn
generated text into nodes live here, once: how text splits into steps (:func:`split_steps`), when a
solution has ended (:func:`ends_solution`), and each node's final answer, extracted once
(:meth:`SearchTree.answer_of`). Exports: :meth:`SearchTree.to_json`, :meth:`SearchTree.to_mermaid`
and :meth:`SearchTree.to_html` (one self-contained page, see :mod:`sal_plugins._tree_html`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sal_plugins.answers import extract_answer
from sal_plugins.solvers.base import StopKind

__all__ = ["Choice", "Node", "SearchTree", "ends_solution", "split_steps", "states_final_answer"]


def split_steps(text: str, delimiter: str) -> tuple[str, ...]:
    """The non-blank steps of ``text``, without delimiters."""
    return tuple(part.strip() for part in text.split(delimiter) if part.strip())


def states_final_answer(step: str) -> bool:
    """Whether a step states the solution's final answer (boxed, "The answer is", ``####``)."""
    return "boxed{" in step or extract_answer(step, flexible=False) is not None


def ends_solution(stop_kind: StopKind, new_steps: tuple[str, ...]) -> bool:
    """Whether a continuation ended its solution: the finish rule of every strategy.

    * the server said the model ended (``"end"``): finished;
    * it ran out of tokens (``"length"``): not finished (truncated);
    * it wrote nothing more: finished, there is nothing left to write;
    * the server said only "stop" (``"unknown"``: OpenAI, llama.cpp and every LangChain or
      LlamaIndex model that does not report which stop string matched) and the last step states
      the final answer: finished. Without this, a continuation of a finished solution starts a
      new one, and the last answer stated wins (search-and-learn's DVTS likewise ends a subtree
      at ``boxed{``). A server that reports the matched delimiter (vLLM) is taken at its word.
    """
    if stop_kind == "end":
        return True
    if stop_kind == "length":
        return False
    if not new_steps:
        return True
    return stop_kind == "unknown" and states_final_answer(new_steps[-1])


@dataclass
class Node:
    """One expansion of the search.

    Attributes:
        id: position in the tree; 0 is the root.
        parent: id of the parent node (``None`` for the root).
        text: what this node added: one step, a whole solution, or a revision.
        steps: the whole trajectory up to and including this node, without delimiters.
        round: the strategy's round (iteration) that created it.
        kind: ``"root"``, ``"step"``, ``"solution"``, ``"lookahead"`` or ``"revision"``.
        stop_kind: why the solver stopped generating this node.
        finished: the solver ended the solution here.
        step_scores: the verifier's scores for ``steps`` (one per step, or one for an outcome verifier).
        score: ``step_scores`` aggregated the way the strategy is configured.
        critique: what the verifier said about this trajectory, when it said anything.
        pruned: the strategy dropped this node.
        selected: the node lies on the path of the selected answer.
        error: why generating or scoring this node failed.
        token_logprobs: the solver's token log-probabilities for ``text``, when requested.
    """

    id: int
    parent: int | None
    text: str = ""
    steps: tuple[str, ...] = ()
    round: int = 0
    kind: str = "step"
    stop_kind: StopKind | None = None
    finished: bool = False
    step_scores: tuple[float, ...] | None = None
    score: float | None = None
    critique: str | None = None
    pruned: bool = False
    selected: bool = False
    error: str | None = None
    token_logprobs: tuple[float, ...] | None = field(default=None, repr=False)

    @property
    def truncated(self) -> bool:
        """The solver ran out of tokens on this node."""
        return self.stop_kind == "length"

    @property
    def scored_per_step(self) -> bool:
        """The verifier gave each of this trajectory's steps a score of its own."""
        return (
            bool(self.steps)
            and self.step_scores is not None
            and len(self.step_scores) == len(self.steps)
        )

    @property
    def failed(self) -> bool:
        """Generation failed here (the node holds the error, not text)."""
        return self.error is not None and not self.text and self.stop_kind is None


@dataclass(frozen=True)
class Choice:
    """A choice a strategy made mid-search, and why (``Adaptive``: the arm its probe called for).

    Attributes:
        round: the round after which it was made.
        choice: what was chosen, in words (``"beam_search n=16, beam_width=4"``).
        because: why, in words (the bin of the policy and the conditions that held).
        signals: the measurements it rests on, by name (``None``: not measured).
    """

    round: int
    choice: str
    because: str
    signals: dict[str, float | None] = field(default_factory=dict)


@dataclass
class SearchTree:
    """All nodes of one search, indexed by id."""

    problem: str
    nodes: list[Node] = field(default_factory=list)
    delimiter: str = "\n\n"
    notes: list[str] = field(default_factory=list, init=False)
    """What the search had to approximate, each once (e.g. answers compared as strings)."""
    choices: list[Choice] = field(default_factory=list, init=False)
    """What the strategy chose mid-search, in order (the driver announces each as an event)."""
    _answers: dict[int, str | None] = field(default_factory=dict, init=False, repr=False)

    def note(self, text: str) -> None:
        """Record an approximation the result should mention (once per text)."""
        if text not in self.notes:
            self.notes.append(text)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes.append(Node(id=0, parent=None, kind="root"))

    def text_of(self, node_id: int) -> str:
        """A node's whole trajectory as one text, steps joined by the search's delimiter."""
        return self.delimiter.join(self.nodes[node_id].steps)

    def answer_of(self, node_id: int) -> str | None:
        """The final answer of a node's trajectory, extracted once and kept."""
        if node_id not in self._answers:
            self._answers[node_id] = extract_answer(self.text_of(node_id))
        return self._answers[node_id]

    @property
    def root(self) -> Node:
        """The root node (the problem itself)."""
        return self.nodes[0]

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def add(self, parent: int, **fields: Any) -> Node:
        """Append a child of ``parent`` and return it."""
        node = Node(id=len(self.nodes), parent=parent, **fields)
        self.nodes.append(node)
        return node

    def step_chain(self, node_id: int) -> list[int]:
        """Split a node that holds several new steps (a whole solution) into one node per step.

        The node keeps its id and everything it was given, but holds only its last step: its
        earlier steps become a chain of new step nodes between it and its old parent, each with
        its share of the node's per-step scores (the prefix's ``score`` is left for the strategy
        to aggregate). No text is generated. Returns the chain's ids, the node's own last; a node
        that adds one step or none is its own chain. A per-step verifier scores a prefix the
        same whether or not more steps follow, which is what makes the prefixes reusable.
        """
        node = self.nodes[node_id]
        parent = node.parent if node.parent is not None else 0
        base = self.nodes[parent].steps
        own = node.steps[len(base) :]
        if len(own) <= 1 or node.steps[: len(base)] != base:
            return [node_id]
        per_step = node.scored_per_step
        chain = []
        for depth in range(len(base) + 1, len(node.steps)):
            prefix = self.add(
                parent,
                text=node.steps[depth - 1],
                steps=node.steps[:depth],
                round=node.round,
                step_scores=node.step_scores[:depth] if per_step and node.step_scores else None,
            )
            chain.append(prefix.id)
            parent = prefix.id
        # Its log-probabilities were of the whole text, no longer its own.
        node.parent, node.text, node.token_logprobs = parent, node.steps[-1], None
        return [*chain, node_id]

    def choose(self, choice: Choice) -> None:
        """Record a choice the strategy made (see :class:`Choice`)."""
        self.choices.append(choice)

    def children(self, node_id: int) -> list[Node]:
        """The direct children of a node, in creation order."""
        return [n for n in self.nodes if n.parent == node_id]

    def path(self, node_id: int) -> list[Node]:
        """The nodes from the root's first child down to ``node_id``."""
        chain: list[Node] = []
        current: int | None = node_id
        while current is not None and current != 0:
            node = self.nodes[current]
            chain.append(node)
            current = node.parent
        return chain[::-1]

    def leaves(self) -> list[Node]:
        """Nodes without children (the root excluded)."""
        parents = {n.parent for n in self.nodes}
        return [n for n in self.nodes[1:] if n.id not in parents]

    def mark_selected(self, node_id: int) -> None:
        """Mark ``node_id`` and its ancestors as the selected path."""
        for node in self.path(node_id):
            node.selected = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"problem": ..., "nodes": [...]}``."""
        nodes = []
        for node in self.nodes:
            row = asdict(node)
            row.pop("token_logprobs")
            row["steps"] = list(node.steps)
            nodes.append(row)
        return {"problem": self.problem, "nodes": nodes}

    def to_json(self, *, indent: int | None = None) -> str:
        """The tree as JSON (``to_dict`` serialised)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_mermaid(self, *, max_label: int = 40) -> str:
        """The tree as a Mermaid ``flowchart``; the selected path is highlighted, pruned nodes greyed."""
        lines = ["flowchart TD", '    n0["problem"]']
        for node in self.nodes[1:]:
            label = _mermaid_label(node, max_label)
            lines.append(f'    n{node.id}["{label}"]')
            lines.append(f"    n{node.parent} --> n{node.id}")
        lines.append("    classDef selected stroke:#2a7,stroke-width:3px")
        lines.append("    classDef pruned fill:#eee,color:#999")
        lines.append("    classDef failed fill:#fdd")
        for cls in ("selected", "pruned", "failed"):
            ids = [f"n{n.id}" for n in self.nodes[1:] if _node_class(n) == cls]
            if ids:
                lines.append(f"    class {','.join(ids)} {cls}")
        return "\n".join(lines) + "\n"

    def to_html(self, *, title: str = "sal-plugins search tree") -> str:
        """One self-contained HTML page (no network) showing the tree, scores and selected path."""
        from sal_plugins._tree_html import render_tree_html

        return render_tree_html(self, title=title)


def _node_class(node: Node) -> str:
    if node.selected:
        return "selected"
    if node.error is not None:
        return "failed"
    if node.pruned:
        return "pruned"
    return "kept"


def _mermaid_label(node: Node, max_label: int) -> str:
    text = " ".join(node.text.split())
    if len(text) > max_label:
        text = text[: max_label - 1] + "…"
    text = text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    score = "" if node.score is None else f" ({node.score:.2f})"
    status = " ✓" if node.finished else ""
    return f"{text}{score}{status}" if text else f"{node.kind}{score}"
