"""Live progress of one search for ``sal run``: a rich panel on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from sal_plugins.events import (
    CandidatesGenerated,
    CandidatesScored,
    ChoiceMade,
    RequestFailed,
    RequestRetried,
    SearchEvent,
    SearchFinished,
    SearchStarted,
)

__all__ = ["SearchProgress"]


class SearchProgress:
    """Shows a search's events as they arrive (use as a context manager, feed :meth:`update`).

    ``best`` is the best score of the latest scored round while the search runs, and the score
    of the selected solution once it has finished: the figure the summary prints, even when the
    selection picked another candidate than the top-scored one (a weighted vote) or a later
    round scored lower than an earlier one (beam search).

    Args:
        stream: where progress goes (stderr, so ``--json`` output on stdout stays clean).
        live: draw a live panel (default: when ``stream`` is a terminal).
        enabled: ``False`` shows nothing.
    """

    def __init__(
        self, stream: TextIO | None = None, *, live: bool | None = None, enabled: bool = True
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.console = Console(file=self.stream, highlight=False, force_terminal=live)
        self.enabled = enabled
        self.live = self.console.is_terminal
        self.strategy = ""
        self.elapsed = 0.0
        self.round = 0
        self.generated = 0
        self.finished = 0
        self.scored = 0
        self.best: float | None = None
        self.retries = 0
        self.failures = 0
        self._live: Live | None = None
        self._started = time.monotonic()
        self._spinner = Spinner("dots")

    def __enter__(self) -> SearchProgress:
        self._started = time.monotonic()
        if self.enabled and self.live:
            # Live redraws the panel several times a second; its spinner and clock compute their
            # text when drawn, so they keep moving while a slow model works on a round.
            self._live = Live(
                self._panel(), console=self.console, refresh_per_second=8, transient=True
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, traceback)
            self._live = None

    def update(self, event: SearchEvent) -> None:
        """Take one event into account and redraw (or print a line)."""
        self.elapsed = event.elapsed_s
        line = self._apply(event)
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._panel())
        elif line:
            print(f"[{event.elapsed_s:6.1f}s] {line}", file=self.stream, flush=True)

    def _apply(self, event: SearchEvent) -> str | None:
        if isinstance(event, SearchStarted):
            self.strategy = event.strategy
            return f"{event.strategy}: searching"
        if isinstance(event, CandidatesGenerated):
            self.round = max(self.round, event.round)
            self.generated += len(event.node_ids)
            self.finished += event.finished
            return (
                f"round {event.round}: {len(event.node_ids)} candidates generated "
                f"({event.finished} finished)"
            )
        if isinstance(event, CandidatesScored):
            self.scored += len(event.node_ids)
            if event.best_score is not None:
                self.best = event.best_score
            best = "-" if event.best_score is None else f"{event.best_score:.3f}"
            return f"round {event.round}: {len(event.node_ids)} scored, best {best}"
        if isinstance(event, ChoiceMade):
            return f"chose {event.choice.choice} ({event.choice.because})"
        if isinstance(event, SearchFinished):
            selected = event.result.best
            self.best = None if selected is None else selected.score
            best = "-" if self.best is None else f"{self.best:.3f}"
            return f"done ({event.result.stop_reason}): selected score {best}"
        if isinstance(event, RequestRetried):
            self.retries += 1
            return f"retrying {event.stage} (attempt {event.attempt}) in {event.wait_s:.1f}s: {event.error}"
        if isinstance(event, RequestFailed):
            self.failures += 1
            return f"round {event.round}: {event.stage} request failed: {event.error}"
        return None

    def _panel(self) -> Group:
        table = Table.grid(padding=(0, 2))
        table.add_column()
        for _ in range(6):
            table.add_column()
        best = "-" if self.best is None else f"{self.best:.3f}"
        table.add_row(
            self._spinner,
            Text(self.strategy or "search", style="bold"),
            _Clock(self._started),
            f"round {self.round}",
            f"{self.generated} generated / {self.finished} finished",
            f"{self.scored} scored, best {best}",
            f"{self.retries} retries, {self.failures} failures",
        )
        return Group(table)


class _Clock:
    """Seconds since ``start``, computed each time it is drawn."""

    def __init__(self, start: float) -> None:
        self.start = start

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(f"{time.monotonic() - self.start:5.1f}s")
