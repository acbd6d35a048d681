"""The support bot over the real wire: a real livekit-server, the bot as it runs in
production, and a scripted LLM (`script(...)` tells it what to answer)."""

from bot.testing.kit import Kit, script


async def test_it_looks_an_order_up(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    turn = await ann.send(script(tool="lookup_order", args={"order_id": "A-1042"}))
    turn.expect.next_event().is_tool_call("lookup_order", {"order_id": "A-1042"})
    turn.expect.next_event().is_tool_result("ok", contains="shipped")
    turn.expect.next_event().is_reply(contains="shipped")
    turn.expect.no_more_events()
    turn.expect.ended("completed")


async def test_an_unknown_order_is_an_error_the_model_sees(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    turn = await ann.send(script(tool="lookup_order", args={"order_id": "Z-0"}, then="Sorry."))
    turn.expect.contains_tool_call("lookup_order", {"order_id": "Z-0"})
    turn.expect.next_event().is_tool_call("lookup_order")
    turn.expect.next_event().is_tool_result("error", contains="no order")
    assert turn.reply == "Sorry."


async def test_a_message_too_long_is_refused(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    turn = await ann.send("x" * 9000)
    assert turn.refused == "payload_too_large"


async def test_two_users_see_only_their_own_turns(lkbot: Kit) -> None:
    room = lkbot.room()
    ann = await lkbot.user("ann", room)
    bob = await lkbot.user("bob", room)
    turn = await ann.send("my order number is A-1042")
    assert turn.reply == "You said: my order number is A-1042"
    assert bob.turns_received() == []
    assert await bob.history() == []


async def test_a_turn_cut_by_a_worker_crash_ends_and_the_user_goes_on(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    assert (await ann.send("hello")).reply == "You said: hello"
    turn = await ann.start(script(stall=True))  # the LLM hangs mid-reply
    await ann.wait_for_event(turn, "turn.delta")
    await lkbot.kill_worker()  # kill -9, and a new worker on the same store
    turn = await ann.finish(turn)
    turn.expect.ended("failed", reason="interrupted")
    assert (await ann.send("still there?")).reply == "You said: still there?"
    assert (await ann.history())[:2] == [("user", "hello"), ("assistant", "You said: hello")]


async def test_the_conversation_matches_its_golden_transcript(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    await ann.send(script(tool="lookup_order", args={"order_id": "B-7"}, then="Preparing."))
    lkbot.golden("lookup", ann.received)


async def test_the_reply_is_helpful(lkbot: Kit) -> None:
    """Skipped unless a judge LLM is configured (LKBOT_JUDGE_MODEL, OPENAI_API_KEY)."""
    ann = await lkbot.user("ann")
    says = "Your order A-1042 has shipped."
    turn = await ann.send(script(tool="lookup_order", args={"order_id": "A-1042"}, then=says))
    await lkbot.judge(turn.reply, "tells the user the status of order A-1042")
