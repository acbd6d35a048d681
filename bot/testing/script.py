"""What the scripted LLM server answers, decided from the request alone.

A user message that starts with `!` followed by a JSON object is a script:

    !{"say": "Hello there"}                 stream exactly this text
    !{"tool": "calculate", "args": {"expression": "2+2"}, "then": "Done."}
    !{"tools": [{"name": "a", "args": {}}, {"name": "b"}]}   one call per step
    !{"parallel": [{"name": "a"}, {"name": "b"}]}   several calls in one step
    !{"status": 500}                        fail with this HTTP status
    !{"delay": 2.5}                         wait before the first byte
    !{"stall": true}                        send one token, then hang
    !{"long": 40000}                        a reply of this many characters (also
                                            after tools: {"tool": ..., "long": n})
    !{"tokens": 100, "ttft_ms": 300, "tps": 50}   a timed profile (benchmarks)
    !{"chunk": 5}                           characters per streamed chunk
    !{"usage": false}                       no token usage in the stream

Anything else is echoed: "You said: <text>". Server-wide defaults (a timed profile
for every request) come from the server's options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


@dataclass
class ToolCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    stall: bool = False
    ttft: float = 0.0
    tps: float = 0.0
    chunk_chars: int = 0
    usage: bool = True


def script(**plan: Any) -> str:
    """A user message that scripts the scripted LLM: `script(tool="calculate",
    args={"expression": "2+2"}, then="Done.")` is `!{"tool": ...}` (the format above)."""
    return "!" + json.dumps(plan)


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _script(text: str) -> dict[str, Any] | None:
    if not text.startswith("!{"):
        return None
    try:
        value = json.loads(text[1:])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _calls(items: list[Any]) -> list[ToolCall]:
    return [ToolCall(name=i["name"], args=i.get("args", {})) for i in items]


def plan_for(messages: list[dict[str, Any]], defaults: dict[str, Any]) -> Plan:
    """The answer to a chat request: a tool call, text, or an error."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    user_text = _text_of(messages[last_user]) if last_user >= 0 else ""
    tool_outputs = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
    script = _script(user_text)
    opts = {**defaults, **(script or {})}
    plan = Plan(
        status=int(opts.get("status", 200)),
        delay=float(opts.get("delay", 0.0)),
        stall=bool(opts.get("stall", False)),
        ttft=float(opts.get("ttft_ms", 0)) / 1000,
        tps=float(opts.get("tps", 0)),
        chunk_chars=int(opts.get("chunk", 0)),
        usage=bool(opts.get("usage", True)),
    )
    steps: list[list[ToolCall]] = []
    if "tool" in opts:
        steps = [[ToolCall(name=opts["tool"], args=opts.get("args", {}))]]
    elif "tools" in opts:
        steps = [[c] for c in _calls(opts["tools"])]
    elif "parallel" in opts:
        steps = [_calls(opts["parallel"])]
    done = sum(1 for _ in tool_outputs) if steps else 0
    calls_done = 0
    for i, step in enumerate(steps):
        if calls_done >= done:
            plan.calls = step
            if i == 0 and "say" in opts:
                plan.text = str(opts["say"])
            return plan
        calls_done += len(step)
    if steps and "long" not in opts:
        summary = "; ".join(_text_of(m) for m in tool_outputs)
        plan.text = str(opts.get("then", f"Tool results: {summary}"))
    elif "say" in opts:
        plan.text = str(opts["say"])
    elif "long" in opts:
        plan.text = long_text(int(opts["long"]))
    elif "tokens" in opts:
        plan.text = " ".join(WORDS[i % len(WORDS)] for i in range(int(opts["tokens"])))
    elif script is None:
        plan.text = f"You said: {user_text}"
    if plan.stall and not plan.text:
        plan.text = "Thinking"  # something to stream before the hang
    return plan


def long_text(n: int) -> str:
    """n characters, some of them multi-byte (the web tests build the same text)."""
    return ("0123456789abcdefghijklmnopqrstuvwxyz\u00e9\u4e2d " * (n // 39 + 1))[:n]


def split_text(text: str, chunk_chars: int) -> list[str]:
    """Streaming pieces: words (a space stays with the word before it) or fixed sizes."""
    if chunk_chars > 0:
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word + " ")
    if pieces:
        pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p]
