"""The testing kit (bot/testing/kit.py, its pytest plugin) used by our own suite: the
`lkbot` fixture with our tools module, each fault it offers with the protocol's
documented outcome, goldens and the judge. (examples/support_bot is a user's project
using it from outside the repository: test_example_project.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.protocol.outbound import ToolApprovalRequest, TurnDelta
from bot.testing.kit import ExpectationError, Kit, script

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def lkbot_settings() -> dict[str, str]:
    return {
        "tools_module": "tests.tools_fixture",
        "approval_tools": "publish_note",
        "llm_timeout": "120",  # turns stall on purpose below
    }


async def test_a_turn_with_a_tool_over_the_wire(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    turn = await ann.send(script(tool="calculate", args={"expression": "2**8"}, then="256."))
    turn.expect.next_event().is_tool_call("calculate", {"expression": "2**8"})
    turn.expect.next_event().is_tool_result("ok", contains="256")
    turn.expect.next_event().is_reply(matches=r"^256\.$")
    turn.expect.no_more_events()
    turn.expect.ended("completed")
    deltas = "".join(e.text for e in turn.events if isinstance(e, TurnDelta))
    assert deltas == turn.reply
    with pytest.raises(ExpectationError, match="expected a tool call of current_time"):
        turn.expect.contains_tool_call("calculate").is_tool_call("current_time")


async def test_two_users_in_a_room_see_only_their_own(lkbot: Kit) -> None:
    room = lkbot.room()
    ann, bob = await lkbot.user("ann", room), await lkbot.user("bob", room)
    assert (await ann.send("for ann")).reply == "You said: for ann"
    assert bob.turns_received() == [] and await bob.history() == []
    assert (await bob.send("for bob")).reply == "You said: for bob"
    assert len({getattr(m, "turn", None) for m in ann.turns_received()}) == 1  # ann's own


async def test_a_dropped_connection_resumes_and_finds_the_turns_end(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    turn = await ann.start(script(stall=True))
    await ann.wait_for_event(turn, "turn.delta")
    await ann.drop()  # leaves mid-turn, joins again, resumes
    (await ann.finish(turn)).expect.ended("cancelled", reason="participant_left")


async def test_faults_get_the_protocols_answers(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    (await ann.send(script(status=500))).expect.ended("failed", reason="llm_unavailable")
    turn = await ann.start(script(stall=True))
    await ann.wait_for_event(turn, "turn.delta")
    await lkbot.restart_worker()  # SIGTERM: it drains, the stalled turn ends
    (await ann.finish(turn)).expect.ended("cancelled", reason="shutdown")
    turn = await ann.start(script(stall=True))
    await ann.wait_for_event(turn, "turn.delta")
    await lkbot.kill_worker()
    (await ann.finish(turn)).expect.ended("failed", reason="interrupted")
    assert (await ann.send("still here")).reply == "You said: still here"
    assert (await ann.history())[-2:] == [
        ("user", "still here"),
        ("assistant", "You said: still here"),
    ]


async def test_an_approval_through_the_kit(lkbot: Kit) -> None:
    ann = await lkbot.user("ann")
    turn = await ann.start(script(tool="publish_note", args={"text": "hi"}, then="Done."))
    asked = await ann.wait_for_event(turn, "tool.approval_request")
    assert isinstance(asked, ToolApprovalRequest)
    assert (await ann.approve(asked.call_id)).status == "accepted"  # type: ignore[union-attr]
    turn = await ann.finish(turn)
    turn.expect.next_event().is_tool_call("publish_note")
    turn.expect.next_event().is_approval_request("publish_note")
    turn.expect.next_event().is_tool_result("ok", contains="published: hi")
    turn.expect.ended("completed")


async def test_golden_transcripts(lkbot: Kit, tmp_path: Path) -> None:
    lkbot.golden_dir = tmp_path
    ann = await lkbot.user("ann")
    await ann.send(script(tool="calculate", args={"expression": "6*7"}, then="42."))
    with pytest.raises(ExpectationError, match="written: check it"):
        lkbot.golden("calc", ann.received)  # the first run writes it
    lkbot.golden("calc", ann.received)  # the same conversation: equal
    other = await lkbot.user("bob")
    await other.send(script(tool="calculate", args={"expression": "6*8"}, then="48."))
    with pytest.raises(ExpectationError, match=r"differs .* at message 2"):
        lkbot.golden("calc", other.received)
    lkbot.update_golden = True
    lkbot.golden("calc", other.received)
    lkbot.update_golden = False
    lkbot.golden("calc", other.received)


async def test_the_judge_is_skipped_without_an_llm_to_judge_with(lkbot: Kit) -> None:
    if lkbot.can_judge:
        pytest.skip("a judge LLM is configured here")
    with pytest.raises(pytest.skip.Exception, match="LKBOT_JUDGE_MODEL"):
        await lkbot.judge("anything", "an intent")
