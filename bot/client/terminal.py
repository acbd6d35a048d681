"""`python -m bot chat`: a terminal client over the real protocol."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TextIO

from .. import sdk
from ..protocol.outbound import (
    BotMessage,
    Error,
    HistoryPage,
    TurnDelta,
    TurnEnd,
    TurnStart,
    TurnStatus,
    TurnToolCall,
    TurnToolResult,
)
from .bot_client import BotClient, TurnResult

HELP = "commands: /history  /reset  /help  /quit   (Ctrl-C cancels a reply; twice quits)"


class Printer:
    """Streams turn events to the terminal as they arrive."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.out, self.err = out, err
        self._typing = False

    def __call__(self, msg: BotMessage) -> None:
        # typing from turn.start: `thinking` comes only if the model is slow to answer
        if isinstance(msg, TurnStart) or (isinstance(msg, TurnStatus) and msg.state == "thinking"):
            if not self._typing:
                self.err.write("… ")
                self.err.flush()
                self._typing = True
        elif isinstance(msg, TurnDelta):
            self.out.write(msg.text)
            self.out.flush()
        elif isinstance(msg, TurnToolCall):
            args = "" if msg.arguments is None else f" {msg.arguments}"
            self.err.write(f"\n[tool {msg.name}{args}]\n")
        elif isinstance(msg, TurnToolResult):
            out = "" if msg.output is None else f": {msg.output[:200]}"
            self.err.write(f"[tool result {msg.status}{out}]\n")
        elif isinstance(msg, TurnEnd):
            self._typing = False
            self.out.write("\n")
            if msg.status != "completed":
                detail = msg.error.message if msg.error else (msg.reason or "")
                self.err.write(f"[turn {msg.status}: {detail}]\n")
            self.out.flush()
        elif isinstance(msg, Error):
            self.err.write(f"[error {msg.code}: {msg.message}]\n")


def exit_code(result: TurnResult) -> int:
    end = result.end
    return 0 if end is not None and end.status == "completed" else 1


async def send_once(client: BotClient, text: str) -> int:
    client.on_message = Printer()
    return exit_code(await client.chat(text))


async def interactive(client: BotClient) -> int:
    printer = Printer()
    client.on_message = printer
    loop = asyncio.get_running_loop()
    current: asyncio.Task[TurnResult] | None = None
    background: set[asyncio.Task[str]] = set()
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if current is not None and not current.done() and interrupts == 1:
            sys.stderr.write("\n[cancelling — Ctrl-C again to quit]\n")
            task = loop.create_task(client.send({"type": "chat.cancel"}))
            background.add(task)
            task.add_done_callback(background.discard)
        else:
            raise SystemExit(130) from None

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    sys.stderr.write(f"connected to {client.agent}. {HELP}\n")
    while True:
        sys.stdout.write("you> ")
        sys.stdout.flush()
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return 0
        text = line.strip()
        interrupts = 0
        if not text:
            continue
        if text in ("/quit", "/exit"):
            return 0
        if text == "/help":
            sys.stderr.write(HELP + "\n")
        elif text == "/reset":
            await client.request("history.reset")
            sys.stderr.write("[history cleared]\n")
        elif text == "/history":
            page = await client.request("history.get", limit=50)
            if isinstance(page, HistoryPage):
                for item in page.items:
                    sys.stdout.write(f"{item.role:>9}: {item.text}\n")
        else:
            sys.stdout.write("bot> ")
            current = asyncio.create_task(client.chat(text, timeout=600))
            with contextlib.suppress(TimeoutError):
                await current


async def run_chat(
    url: str, token: str, *, send: str | None, topic: str, agent_name: str | None
) -> int:
    sdk.enable()  # `bot chat` is our own process: native logs stay in Rust
    client = BotClient(topic=topic, agent_name=agent_name or None)
    try:
        await client.connect(url, token)
        if send is not None:
            return await send_once(client, send)
        return await interactive(client)
    finally:
        await client.disconnect()
