"""Background tasks that cannot die silently.

Every long-lived task of the bot (a sender's reader, an outbox's publisher, a turn
queue) is started with `supervise`: a reference is kept (asyncio holds only weak ones),
and when the task ends with an exception the exception is logged with its traceback
and `on_crash` runs, so the owner can restart the task or tell the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

_RUNNING: set[asyncio.Task[Any]] = set()


def supervise(
    coro: Coroutine[Any, Any, None],
    *,
    name: str,
    on_crash: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[None]:
    task = asyncio.create_task(coro, name=name)
    _RUNNING.add(task)

    def done(t: asyncio.Task[None]) -> None:
        _RUNNING.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is None:
            return
        log.error("background task %s crashed", name, exc_info=exc)
        if on_crash is not None:
            try:
                on_crash(exc)
            except Exception:
                log.exception("recovering from the crash of %s failed", name)

    task.add_done_callback(done)
    return task
