"""`EventEmitter.emit` without a signature per call.

livekit.rtc's `EventEmitter.emit` runs `inspect.signature(callback)` for every callback
of every event, to pass it as many arguments as it takes. Every data packet the worker
receives is one such event: under a flood from one participant (`bench.flood`) that
was 6.6% of the worker's samples. `install()` replaces `emit` with one that works out
each callback's arity once (kept per callback while it lives) and calls it exactly as
the stock `emit` does. Applied by `bot.sdk.enable()` with the other patches.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any

from livekit.rtc.event_emitter import EventEmitter

log = logging.getLogger("livekit")

_arity: weakref.WeakKeyDictionary[Callable[..., Any], int | None] = weakref.WeakKeyDictionary()
_stock_emit = EventEmitter.emit


def arity(callback: Callable[..., Any]) -> int | None:
    """How many positional arguments `callback` takes (None: any number)."""
    try:
        return _arity[callback]
    except (KeyError, TypeError):  # TypeError: not weakly referable; worked out each time
        pass
    params = inspect.signature(callback).parameters.values()
    n: int | None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        n = None
    else:
        n = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    with contextlib.suppress(TypeError):
        _arity[callback] = n
    return n


def _emit(self: EventEmitter[Any], event: Any, *args: Any) -> None:
    if event in self._events:
        for callback in list(self._events[event]):
            try:
                n = arity(callback)
                callback(*(args if n is None else args[:n]))
            except TypeError:
                raise
            except Exception:
                log.exception(f"failed to emit event {event}")


def install() -> None:
    EventEmitter.emit = _emit  # type: ignore[method-assign]


def uninstall() -> None:
    EventEmitter.emit = _stock_emit  # type: ignore[method-assign]
