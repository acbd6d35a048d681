"""Participant attributes of the protocol: how clients and bots find each other.

The bot is the participant of kind AGENT (a kind only a server-side token grants)
with `lkbot.protocol`, and, under explicit dispatch, the configured `lk.agent.name`.
"""

from __future__ import annotations

from collections.abc import Mapping

PROTOCOL_ATTRIBUTE = "lkbot.protocol"  # the protocol's major version, as text
TOPICS_ATTRIBUTE = "lkbot.topics"  # comma-separated
WORKER_ATTRIBUTE = "lkbot.worker"  # the worker id: the dispatch watchdog tells dead bots by it
SINCE_ATTRIBUTE = "lkbot.since"  # when the bot joined (ns): the younger of two leaves
# set (to "1") by a bot that hands the room over to another (its worker drains):
# clients keep talking to it until it leaves, then to the other
HANDING_OVER_ATTRIBUTE = "lkbot.handing_over"
CLIENT_ATTRIBUTE = "lkbot.client"  # set by clients: an attribute change is announced at once
AGENT_NAME_ATTRIBUTE = "lk.agent.name"  # set by LiveKit Agents, and by our worker


def is_bot(attributes: Mapping[str, str], agent_name: str | None) -> bool:
    """Whether an AGENT participant's attributes are those of our bot (`agent_name`
    None: any agent name)."""
    return PROTOCOL_ATTRIBUTE in attributes and (
        agent_name is None or attributes.get(AGENT_NAME_ATTRIBUTE, "") == agent_name
    )
