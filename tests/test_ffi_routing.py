"""The FFI event router: a room's events reach its own Room, and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from livekit.rtc._ffi_client import FfiQueue
from livekit.rtc._proto import ffi_pb2 as proto_ffi

from bot.sdk.ffi_routing import RoutedFfiQueue


def room_event(handle: int) -> proto_ffi.FfiEvent:
    event = proto_ffi.FfiEvent()
    event.room_event.room_handle = handle
    event.room_event.eos.SetInParent()
    return event


def callback(async_id: int) -> proto_ffi.FfiEvent:
    event = proto_ffi.FfiEvent()
    event.publish_data.async_id = async_id
    return event


async def drained(*queues: asyncio.Queue[proto_ffi.FfiEvent]) -> list[list[proto_ffi.FfiEvent]]:
    await asyncio.sleep(0)  # let call_soon_threadsafe deliveries run
    out = []
    for q in queues:
        got = []
        while not q.empty():
            got.append(q.get_nowait())
        out.append(got)
    return out


async def test_a_bound_room_gets_only_its_own_room_events_and_every_callback() -> None:
    router = RoutedFfiQueue()
    a, b, waiting = router.subscribe(), router.subscribe(), router.subscribe()
    router.bind(a, 1)
    router.bind(b, 2)
    for event in (room_event(1), room_event(2), callback(7)):
        router.put(event)
    got_a, got_b, got_waiting = await drained(a, b, waiting)
    assert [e.room_event.room_handle for e in got_a[:1]] == [1] and len(got_a) == 2
    assert [e.room_event.room_handle for e in got_b[:1]] == [2] and len(got_b) == 2
    assert got_a[1].publish_data.async_id == got_b[1].publish_data.async_id == 7
    assert len(got_waiting) == 3  # not bound (a room connecting, a request's waiter): all


async def test_the_sdk_queue_wakes_every_room_for_every_event() -> None:
    """What the router removes: with the SDK's queue each room sees the others' events."""
    plain: FfiQueue[proto_ffi.FfiEvent] = FfiQueue()
    a, b = plain.subscribe(), plain.subscribe()
    plain.put(room_event(1))
    got_a, got_b = await drained(a, b)  # type: ignore[arg-type]
    assert len(got_a) == len(got_b) == 1


async def test_an_event_for_a_handle_nobody_bound_goes_to_everyone() -> None:
    router = RoutedFfiQueue()
    a, b = router.subscribe(), router.subscribe()
    router.bind(a, 1)
    router.put(room_event(99))
    got_a, got_b = await drained(a, b)
    assert len(got_a) == len(got_b) == 1


async def test_filters_still_apply_and_unsubscribed_queues_get_nothing() -> None:
    router = RoutedFfiQueue()
    picky = router.subscribe(filter_fn=lambda e: e.WhichOneof("message") != "publish_data")
    gone = router.subscribe()
    router.bind(gone, 3)
    router.unsubscribe(gone)
    router.put(callback(1))
    router.put(room_event(3))
    got_picky, got_gone = await drained(picky, gone)
    assert [e.WhichOneof("message") for e in got_picky] == ["room_event"]
    assert got_gone == []
    assert router._by_handle == {} and router._handles == {}


async def test_events_from_other_threads_arrive_in_order_with_one_wake_up_a_batch() -> None:
    """The FFI calls in from its own threads; events that come before the loop has run
    share one wake-up, and every queue gets its events in the order they came."""
    import threading

    router = RoutedFfiQueue()
    a, b = router.subscribe(), router.subscribe()
    loop = asyncio.get_running_loop()
    wakeups = 0
    real = loop.call_soon_threadsafe

    def counting(*args: Any) -> asyncio.Handle:
        nonlocal wakeups
        wakeups += 1
        return real(*args)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        t = threading.Thread(target=lambda: [router.put(callback(i)) for i in range(200)])
        t.start()
        await asyncio.to_thread(t.join)
        got_a = [(await a.get()).publish_data.async_id for _ in range(200)]
        got_b = [(await b.get()).publish_data.async_id for _ in range(200)]
    finally:
        del loop.call_soon_threadsafe
    assert got_a == got_b == list(range(200))
    assert wakeups < 2 * 200  # the SDK's queue: one per event and queue


async def test_an_expected_callback_reaches_its_call_alone() -> None:
    """`publish`'s answer: one wake-up for its own call, none for the rooms (the SDK's
    queue put every callback into every room's queue and every call's)."""
    router = RoutedFfiQueue()
    room, stock_call = router.subscribe(), router.subscribe()
    router.bind(room, 1)
    answer = router.expect(7, asyncio.get_running_loop())
    router.put(callback(7))
    router.put(callback(8))  # somebody else's call (the SDK's own publish_data)
    assert (await asyncio.wait_for(answer, 5)).publish_data.async_id == 7
    got_room, got_stock = await drained(room, stock_call)
    assert [e.publish_data.async_id for e in got_room] == [8]
    assert [e.publish_data.async_id for e in got_stock] == [8]


async def test_a_callback_before_its_call_waits_for_it_and_cancelled_calls_leave_nothing() -> None:
    """The FFI answers on its own threads, possibly before the call has registered."""
    router = RoutedFfiQueue()
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(router.put, callback(3))  # before expect()
    assert (await asyncio.wait_for(router.expect(3, loop), 5)).publish_data.async_id == 3
    answer = router.expect(4, loop)
    answer.cancel()
    router.drop(answer)
    assert router._waiting == {} and router._early == {}
    for i in range(100, 100 + 2000):  # the SDK's own calls' callbacks: a bounded memory
        router.put(callback(i))
    assert len(router._early) <= 1024
