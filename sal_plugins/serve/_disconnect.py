"""Noticing a client that leaves while its search runs (:class:`ClientWatch`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

__all__ = ["ClientGone", "ClientWatch"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientGone(Exception):
    """The client closed the connection before its answer: what it was waiting for is cancelled."""


async def _until_disconnected(receive: Receive) -> None:
    # The request body is already read, so the next ASGI message is ``http.disconnect``: the
    # server delivers it the moment the connection drops, with no polling in between.
    while (await receive())["type"] != "http.disconnect":
        pass


class ClientWatch:
    """Cancels what the current task awaits when the client disconnects, while armed.

    ``with watch.armed(): await search`` cancels the await the moment the ASGI server delivers
    ``http.disconnect`` (the search's upstream requests with it) and raises :class:`ClientGone`
    instead. A disconnect while disarmed (a stream writing a chunk) is remembered: the next
    ``armed()`` raises at once. Create it in the task that awaits; :meth:`close` it when done.

    Args:
        receive: the request's ASGI ``receive``, its body already read.
    """

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("ClientWatch must be created inside a task")
        self._task = task
        self._armed = False
        self.left = False
        """Whether the client has gone."""
        self._watcher = asyncio.ensure_future(_until_disconnected(receive))
        self._watcher.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return
        self.left = True
        if self._armed:
            self._task.cancel()

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """The block's awaits are cancelled if the client leaves (then :class:`ClientGone`)."""
        if self.left:
            raise ClientGone
        self._armed = True
        try:
            yield
        except asyncio.CancelledError:
            if not self.left:
                raise  # cancelled for another reason (the server is stopping)
            self._task.uncancel()
            raise ClientGone from None
        finally:
            self._armed = False

    def close(self) -> None:
        """Stop watching."""
        self._watcher.cancel()
