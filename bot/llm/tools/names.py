"""A tool's name, whatever kind of livekit-agents tool it is."""

from __future__ import annotations

from livekit.agents import llm


def tool_name(tool: llm.Tool) -> str:
    """`info.name` of a function tool (raw or not); "" for a tool without one."""
    return str(getattr(getattr(tool, "info", None), "name", ""))
