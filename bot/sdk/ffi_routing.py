"""Route livekit's FFI room events to the one `rtc.Room` they belong to.

`livekit.rtc` hands every FFI event to every subscribed queue (`_ffi_client.py`,
`FfiQueue.put`: one `call_soon_threadsafe` per `Room` in the process), and each `Room`
then drops the events of other rooms in its `_listen_task`. With N rooms in a process
every event costs N wake-ups of the event loop, so the cost of a room grows with the
number of rooms: that is what made a burst of 50 rooms in one process slow.

`RoutedFfiQueue` replaces the client's queue. A room event goes to the queues bound to
its room handle (`bind`, right after `Room.connect`) and to queues not bound yet (a
room still connecting); every other event (request callbacks, RPC, streams) still goes
to every queue, as before. Nothing is lost: an event for a handle nobody bound goes to
everyone. The SDK's own filters still run.

`publish_now` hands over a reliable packet as `LocalParticipant.publish_data` does, and
its answer (the FFI's `publish_data` callback) goes to that one call alone (`expect`):
the SDK gives each call a queue of its own that every FFI event of the process is put
into, and hands each callback to every `Room` too. It also copies the payload in one
piece (the SDK builds its C array from the bytes one by one).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient, FfiQueue
from livekit.rtc._proto import ffi_pb2 as proto_ffi
from livekit.rtc._utils import Queue

log = logging.getLogger("livekit")


class RoutedFfiQueue(FfiQueue[proto_ffi.FfiEvent]):
    def __init__(self) -> None:
        super().__init__()
        self._handles: dict[int, int] = {}  # id(queue) -> room handle
        self._by_handle: dict[int, list[Any]] = {}  # room handle -> subscribers
        self._unbound: list[Any] = []
        # per loop, the events on their way to it (and what takes each); a loop is woken
        # when its list goes from empty to not (guarded by self._lock)
        self._batches: dict[asyncio.AbstractEventLoop, list[tuple[Callable[[Any], None], Any]]] = {}
        # `publish`: the calls waiting for their callback, by async id; callbacks that
        # came before their call was registered (a few: a call registers right after its
        # request returns; the others are the SDK's own calls, delivered as before)
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._early: OrderedDict[int, proto_ffi.FfiEvent] = OrderedDict()

    def _deliver(self, subscriber: Any, item: proto_ffi.FfiEvent) -> None:
        queue, loop, filter_fn = subscriber
        if filter_fn is not None:
            try:
                if not filter_fn(item):
                    return
            except Exception:
                pass  # as the SDK does: on a filter error, deliver
        self._to_loop(loop, queue.put_nowait, item)

    def _to_loop(
        self, loop: asyncio.AbstractEventLoop, take: Callable[[Any], None], item: Any
    ) -> None:
        batch = self._batches.get(loop)
        if batch:
            if loop.is_closed():  # its wake-up will never run
                del self._batches[loop]
                return
            batch.append((take, item))  # a wake-up is on its way: it takes this too
            return
        try:
            loop.call_soon_threadsafe(self._flush, loop)
        except Exception as e:  # a closed loop: as the SDK does, log and go on
            log.error("error putting to queue: %s", e)
            return
        self._batches[loop] = [(take, item)]

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            batch = self._batches.pop(loop, [])
        for take, item in batch:
            take(item)

    def expect(self, async_id: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        """The callback of the request `async_id` (a `publish_data`), for this call
        alone."""
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            early = self._early.pop(async_id, None)
            if early is None:
                self._waiting[async_id] = (loop, future)
        if early is not None:
            future.set_result(early)
        return future

    def drop(self, answer: asyncio.Future[Any]) -> None:
        """A call that stopped waiting (cancelled): its callback is not kept for it."""
        with self._lock:
            for async_id, (_, future) in list(self._waiting.items()):
                if future is answer:
                    del self._waiting[async_id]

    def put(self, item: proto_ffi.FfiEvent) -> None:
        with self._lock:
            which = item.WhichOneof("message")
            if which == "publish_data":
                async_id = item.publish_data.async_id
                waiting = self._waiting.pop(async_id, None)
                if waiting is not None:
                    self._to_loop(waiting[0], _resolver(waiting[1]), item)
                    return
                self._early[async_id] = item
                if len(self._early) > EARLY_KEPT:
                    self._early.popitem(last=False)
            if which == "room_event":
                bound = self._by_handle.get(item.room_event.room_handle)
                if bound is not None:
                    for subscriber in bound:
                        self._deliver(subscriber, item)
                    for subscriber in self._unbound:
                        self._deliver(subscriber, item)
                    return
            for subscriber in self._subscribers:
                self._deliver(subscriber, item)

    def subscribe(
        self, loop: asyncio.AbstractEventLoop | None = None, filter_fn: Any = None
    ) -> Queue[proto_ffi.FfiEvent]:
        with self._lock:
            queue = super().subscribe(loop, filter_fn)
            self._unbound.append(self._subscribers[-1])
            return queue

    def unsubscribe(self, queue: Queue[proto_ffi.FfiEvent]) -> None:
        with self._lock:
            super().unsubscribe(queue)
            self._unbound = [s for s in self._unbound if s[0] is not queue]
            handle = self._handles.pop(id(queue), None)
            if handle is not None:
                rest = [s for s in self._by_handle.get(handle, []) if s[0] is not queue]
                if rest:
                    self._by_handle[handle] = rest
                else:
                    self._by_handle.pop(handle, None)

    def bind(self, queue: Queue[proto_ffi.FfiEvent], handle: int) -> None:
        """From now on `queue` gets only its own room's events (and all the others)."""
        with self._lock:
            for subscriber in self._unbound:
                if subscriber[0] is queue:
                    self._unbound.remove(subscriber)
                    self._handles[id(queue)] = handle
                    self._by_handle.setdefault(handle, []).append(subscriber)
                    return


EARLY_KEPT = 1024  # callbacks kept for a call not registered yet (the SDK's own calls')


def _resolver(future: asyncio.Future[Any]) -> Callable[[Any], None]:
    def resolve(item: Any) -> None:
        if not future.done():
            future.set_result(item)

    return resolve


def publish_now(
    participant: rtc.LocalParticipant, payload: str, *, topic: str, to: list[str]
) -> asyncio.Future[Any]:
    """Hand one reliable packet to the FFI now (its payload is copied by the request),
    and return its answer, routed to this call alone (see above). livekit-ffi puts a
    room's packets on one queue that a single task publishes in order (`data_task` in
    livekit-ffi's server/room.rs), so packets handed over one after another go out in
    that order whether or not the earlier answers have come."""
    queue = FfiClient.instance.queue
    assert isinstance(queue, RoutedFfiQueue)
    data = payload.encode()
    buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
    req = proto_ffi.FfiRequest()
    publish = req.publish_data
    publish.local_participant_handle = participant._ffi_handle.handle
    publish.data_ptr = ctypes.addressof(buffer)
    publish.data_len = len(data)
    publish.reliable = True
    publish.topic = topic
    publish.destination_identities.extend(to)
    async_id = FfiClient.instance.request(req).publish_data.async_id
    return queue.expect(async_id, asyncio.get_running_loop())


def answered(answer: asyncio.Future[Any]) -> asyncio.Future[None]:
    """What a `publish_now` answer means: done, or failed with the SDK's
    PublishDataError. Cancelling it stops waiting for the answer."""
    done: asyncio.Future[None] = answer.get_loop().create_future()

    def settle(f: asyncio.Future[Any]) -> None:
        if done.done():
            return
        if f.cancelled():
            done.cancel()
        elif (error := f.exception()) is not None:
            done.set_exception(error)
        elif f.result().publish_data.error:
            done.set_exception(rtc.participant.PublishDataError(f.result().publish_data.error))
        else:
            done.set_result(None)

    def stop(d: asyncio.Future[None]) -> None:
        if d.cancelled() and not answer.done():
            answer.cancel()
            queue = FfiClient.instance.queue
            if isinstance(queue, RoutedFfiQueue):
                queue.drop(answer)

    answer.add_done_callback(settle)
    done.add_done_callback(stop)
    return done


_install_lock = threading.Lock()


def install() -> RoutedFfiQueue:
    """Swap the process's FFI queue for a routed one (idempotent; before any Room)."""
    with _install_lock:
        client = FfiClient.instance
        queue = client.queue
        if isinstance(queue, RoutedFfiQueue):
            return queue
        routed = RoutedFfiQueue()
        with queue._lock:
            for subscriber in queue._subscribers:
                routed._subscribers.append(subscriber)
                routed._unbound.append(subscriber)
            client._queue = routed
        return routed


def bind(room: rtc.Room) -> None:
    """Call right after `room.connect()`: its events stop waking the other rooms."""
    queue = FfiClient.instance.queue
    if isinstance(queue, RoutedFfiQueue) and room._ffi_handle is not None:
        queue.bind(room._ffi_queue, room._ffi_handle.handle)
