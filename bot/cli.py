"""`python -m bot`: run the worker, print the protocol schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, Settings, load_settings

DESCRIPTION = """\
lkbot: a private, multi-user text chat bot for LiveKit rooms.

Clients send JSON messages on a data-channel topic (default `lkbot`); the bot answers
each sender privately. Settings come from the environment and `.env` (see README).
"""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # one line per LLM request is noise at INFO; keep its warnings
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _check_settings(dev: bool) -> Settings:
    settings = load_settings()
    missing = [
        name
        for name, value in (
            ("LIVEKIT_URL", settings.livekit_url),
            ("LIVEKIT_API_KEY", settings.livekit_api_key),
            ("LIVEKIT_API_SECRET", settings.livekit_api_secret),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"{missing[0]}: not set (needed to reach the LiveKit server)")
    # Fail now, in the main process, rather than in every job process later.
    from .llm_factory import build_llm
    from .tools import load_tools

    load_tools(settings, lambda: [])
    build_llm(settings)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    dev = args.command == "dev"
    if dev:
        os.environ.setdefault("BOT_LOG_LEVEL", "DEBUG" if args.verbose else "INFO")
    settings = _check_settings(dev)
    _setup_logging(settings.log_level)
    from .worker import serve

    asyncio.run(serve(settings, dev=dev, ready_file=args.ready_file))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .protocol.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def _ready_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ready-file",
        type=Path,
        metavar="PATH",
        help="write the worker id to PATH once registered with LiveKit (for scripts and tests)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = sub.add_parser(
        "start",
        help="run the production worker",
        description="Run the production worker: "
        "registers with LiveKit and serves every room it is dispatched to.",
    )
    start.set_defaults(func=cmd_run)
    _ready_option(start)
    dev = sub.add_parser(
        "dev",
        help="run the worker for local development",
        description="Run the worker in development mode: readable logs, no load shedding, "
        "health server on a random loopback port.",
    )
    dev.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    dev.set_defaults(func=cmd_run)
    _ready_option(dev)
    schema = sub.add_parser(
        "schema",
        help="print the protocol's JSON Schema",
        description="Print the JSON Schema of both directions (discriminated on `type`).",
    )
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
