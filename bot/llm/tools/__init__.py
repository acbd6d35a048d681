"""Tools for the model: built-ins chosen by name plus any from a user module."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from livekit.agents import FunctionTool
from livekit.agents.llm.tool_context import RawFunctionTool

from ...config import ConfigError, Settings
from ...transport import Peer
from .builtin import builtin_tools

Tool = FunctionTool[..., Any] | RawFunctionTool[..., Any]


def _module_tools(module: ModuleType) -> list[Tool]:
    declared: Any = getattr(module, "TOOLS", None)
    if declared is not None:
        tools = list(declared)
    else:
        tools = [v for v in vars(module).values() if isinstance(v, FunctionTool | RawFunctionTool)]
    bad = [t for t in tools if not isinstance(t, FunctionTool | RawFunctionTool)]
    if bad:
        raise ConfigError(
            f"BOT_TOOLS_MODULE: {module.__name__}.TOOLS holds {bad[0]!r}, "
            "which is not decorated with @function_tool"
        )
    return tools


def load_tools(settings: Settings, peers: Callable[[], list[Peer]]) -> list[Tool]:
    available = builtin_tools(peers)
    unknown = [name for name in settings.builtin_tools if name not in available]
    if unknown:
        raise ConfigError(
            f"BOT_BUILTIN_TOOLS: unknown tool {unknown[0]!r}; choose from {', '.join(available)}"
        )
    tools: list[Tool] = [available[name] for name in settings.builtin_tools]
    if settings.tools_module:
        try:
            module = importlib.import_module(settings.tools_module)
        except ImportError as e:
            raise ConfigError(
                f"BOT_TOOLS_MODULE: cannot import {settings.tools_module!r}: {e}"
            ) from e
        tools.extend(_module_tools(module))
    return tools
