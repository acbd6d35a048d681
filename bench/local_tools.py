"""Can the bundled local model (SmolLM2-135M on llama.cpp) call the built-in tools?

A fixed set of prompts, each sent once (temperature 0) with the bot's three built-in
tools, through llama.cpp's OpenAI-compatible server, in two chat formats: the model's
own, and llama-cpp-python's grammar-constrained `chatml-function-calling`. A prompt
passes when the model calls the expected tool with arguments that do the job (the
expression evaluates to the right number, the time zone is the one asked for), or calls
none when none is needed. Local mode turns tools on only if a format passes every
prompt (issue 22); the table goes to docs/tools.md.

    python -m bench.local_tools            # prints the table
    python -m bench.local_tools --publish  # and writes it into docs/tools.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from livekit.agents import llm

from bot.llm import local
from bot.llm.tools.builtin import builtin_tools
from bot.llm.tools.calculator import CalcError, evaluate
from bot.turns.engine import schema_only

DOCS = Path(__file__).resolve().parent.parent / "docs" / "tools.md"
BEGIN, END = "<!-- local-tools:begin -->", "<!-- local-tools:end -->"


@dataclass(frozen=True)
class Case:
    prompt: str
    tool: str | None  # the tool it should call (None: no tool)
    check: str = ""  # calculate: the expected result; current_time: a zone substring


CASES = [
    Case("What is 17 times 23?", "calculate", "391"),
    Case("Compute 2 to the power of 10.", "calculate", "1024"),
    Case("What is 144 divided by 12?", "calculate", "12"),
    Case("Add 345 and 655.", "calculate", "1000"),
    Case("What is the square root of 81?", "calculate", "9"),
    Case("What time is it in Tokyo right now?", "current_time", "Tokyo"),
    Case("What is the current time in Europe/Paris?", "current_time", "Paris"),
    Case("What day of the week is it in New York?", "current_time", "New_York"),
    Case("Who else is in this room?", "participants"),
    Case("List the participants of this chat.", "participants"),
    Case("Hello! How are you today?", None),
    Case("Tell me a short joke.", None),
    Case("What is the capital of France?", None),
]


def _tools() -> list[dict[str, Any]]:
    described = schema_only(list(builtin_tools(lambda: []).values()))
    return [
        {"type": "function", "function": t.info.raw_schema}
        for t in described
        if isinstance(t, llm.RawFunctionTool)
    ]


def verdict(case: Case, calls: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether the model's tool calls answer `case`, and what it did."""
    if case.tool is None:
        return not calls, ", ".join(c["function"]["name"] for c in calls) or "no call"
    if len(calls) != 1:
        return False, f"{len(calls)} calls" if calls else "no call"
    name, raw = calls[0]["function"]["name"], calls[0]["function"].get("arguments") or "{}"
    did = f"{name}({raw})"
    if name != case.tool:
        return False, did
    try:
        args = json.loads(raw)
    except json.JSONDecodeError:
        return False, did
    if not isinstance(args, dict):
        return False, did
    if case.tool == "calculate":
        try:
            value = evaluate(str(args.get("expression", "")))
        except CalcError:
            return False, did
        return abs(float(value) - float(case.check)) < 1e-9, did
    if case.tool == "current_time":
        return case.check in str(args.get("timezone", "")), did
    return True, did


async def run_format(chat_format: str | None) -> list[tuple[Case, bool, str, float]]:
    server = await asyncio.to_thread(local.start, chat_format=chat_format)
    results = []
    try:
        async with aiohttp.ClientSession() as http:
            for case in CASES:
                body = {
                    "model": "local",
                    "temperature": 0,
                    "max_tokens": 128,
                    "messages": [
                        {"role": "system", "content": "You are a helpful assistant with tools."},
                        {"role": "user", "content": case.prompt},
                    ],
                    "tools": _tools(),
                    "tool_choice": "auto",
                }
                started = time.perf_counter()
                async with http.post(f"{server.base_url}/chat/completions", json=body) as r:
                    answer = await r.json()
                took = time.perf_counter() - started
                message = (answer.get("choices") or [{}])[0].get("message") or {}
                ok, did = verdict(case, message.get("tool_calls") or [])
                if not message.get("tool_calls") and case.tool is not None:
                    text = re.sub(r"\s+", " ", str(message.get("content") or ""))[:60]
                    did = f"text: {text!r}"
                results.append((case, ok, did, took))
    finally:
        server.stop()
    return results


def table(runs: dict[str, list[tuple[Case, bool, str, float]]]) -> str:
    formats = list(runs)
    lines = [
        "| prompt | expected | " + " | ".join(f"`{f}`" for f in formats) + " |",
        "|---|---|" + "---|" * len(formats),
    ]
    for i, case in enumerate(CASES):
        cells = []
        for f in formats:
            _, ok, did, _ = runs[f][i]
            cells.append(("pass" if ok else "fail") + f": {did}".replace("|", "\\|"))
        lines.append(f"| {case.prompt} | {case.tool or 'no tool'} | " + " | ".join(cells) + " |")
    totals = []
    for f in formats:
        passed = sum(ok for _, ok, _, _ in runs[f])
        tool_cases = [(c, ok) for c, ok, _, _ in runs[f] if c.tool is not None]
        right = sum(ok for _, ok in tool_cases)
        totals.append(
            f"`{f}`: {passed}/{len(CASES)} prompts ({right}/{len(tool_cases)} tool calls right)"
        )
    return "\n".join(lines) + "\n\nPassed: " + "; ".join(totals) + "."


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--publish", action="store_true", help="write the table into docs/tools.md")
    args = parser.parse_args()
    runs: dict[str, list[tuple[Case, bool, str, float]]] = {}
    for name, chat_format in (
        ("model's own", None),
        ("chatml-function-calling", "chatml-function-calling"),
    ):
        print(f"… {name}", flush=True)
        runs[name] = await run_format(chat_format)
    out = table(runs)
    print(out)
    if args.publish:
        text = DOCS.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        DOCS.write_text(text[:start] + "\n" + out + "\n" + text[end:])
        print(f"written into {DOCS}")


if __name__ == "__main__":
    asyncio.run(main())
