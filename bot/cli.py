"""`python -m bot`: run the worker, chat with it, mint tokens, print the schema."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from .config import ConfigError, Settings, load_settings
from .logs import setup_logging

DESCRIPTION = """\
lkbot: a private, multi-user text chat bot for LiveKit rooms.

Clients send JSON messages on a data-channel topic (default `lkbot`); the bot answers
each sender privately. Settings come from the environment and `.env` (see README).

  python -m bot up                       local server + bot, ready to chat
  python -m bot chat --room demo --identity me
  python -m bot web                      the chat page and token endpoint (`up` has them)
  python -m bot start                    production worker (needs LIVEKIT_* and an LLM)
"""


def _client_settings() -> Settings:
    """For chat/token: the configured server, else the one `up` started."""
    from .dev.stack import dev_server_settings

    settings = load_settings()
    if settings.livekit_url:
        return _livekit_settings()
    return _livekit_settings(**dev_server_settings())


def _livekit_settings(**overrides: object) -> Settings:
    settings = load_settings(**overrides)
    for name, value in (
        ("LIVEKIT_URL", settings.livekit_url),
        ("LIVEKIT_API_KEY", settings.livekit_api_key),
        ("LIVEKIT_API_SECRET", settings.livekit_api_secret),
    ):
        if not value:
            raise ConfigError(
                f"{name}: not set (needed to reach the LiveKit server; "
                "`python -m bot up` starts a local one)"
            )
    return settings


def _check_worker_settings(**overrides: object) -> Settings:
    settings = _livekit_settings(**overrides)
    # Fail now, in the main process, rather than in every job process later.
    from .llm.endpoint import api_key
    from .llm.tools import load_tools

    load_tools(settings, lambda: [])
    from .llm.tools.mcp import parse_servers

    parse_servers(settings.mcp_servers)
    if settings.resolved_llm_mode() == "local":
        from .llm.local import check_installed

        check_installed(settings.local_model_path)
    else:
        api_key(settings)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    dev = args.command == "dev"
    verbose = dev and args.verbose
    settings = _check_worker_settings(**({"log_level": "DEBUG"} if verbose else {}))
    setup_logging(settings.log_level)
    child = getattr(args, "child", False)  # `dev` has no such option
    if not dev and not child:
        from .worker import processes

        n = processes.count(settings)
        if n > 1:
            supervisor = processes.Supervisor(settings, n, args.ready_file)
            asyncio.run(supervisor.run())
            return 0
    from .worker.serve import serve

    asyncio.run(serve(settings, dev=dev, ready_file=args.ready_file, child=child))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings.log_level)
    from .dev.stack import up

    asyncio.run(up(args.ready_file))
    return 0


def _parse_ttl(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError("use a number and a unit, e.g. 30m, 6h, 2d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def cmd_token(args: argparse.Namespace) -> int:
    from .room.tokens import mint_token

    settings = _client_settings()
    print(
        mint_token(settings, room=args.room, identity=args.identity, name=args.name, ttl=args.ttl)
    )
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    settings = _client_settings()
    if args.port is not None:
        settings = settings.model_copy(update={"web_port": args.port})
    setup_logging(settings.log_level)
    from .web.server import WebServer

    async def run() -> None:
        page = WebServer(settings)
        url = await page.start()
        print(f"chat page on {url}  (token endpoint: {url}token)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await page.stop()

    asyncio.run(run())
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .client.terminal import run_chat
    from .room.tokens import mint_token

    settings = _client_settings()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    token = mint_token(settings, room=args.room, identity=args.identity)
    return asyncio.run(
        run_chat(
            settings.livekit_url,
            token,
            send=args.send,
            topic=args.topic or settings.topics[0],
            agent_name=settings.agent_name,
        )
    )


def cmd_store(args: argparse.Namespace) -> int:
    """Inspect or purge stored conversations (the store BOT_STORE names)."""
    import asyncio

    from .store import ConversationKey, describe, from_settings

    settings = Settings()

    async def run() -> int:
        store = from_settings(settings)
        try:
            if args.action == "list":
                keys = await store.keys()
                for key in keys:
                    print(f"{key.room or '*'}\t{key.identity}")
                print(f"{len(keys)} conversations in {describe(settings.store)}", file=sys.stderr)
                return 0
            if args.action == "purge-expired":
                print(f"{await store.purge_expired()} expired conversations deleted")
                return 0
            if args.identity is None:
                print("error: give ROOM and IDENTITY", file=sys.stderr)
                return 2
            room = "" if args.room in ("*", "") else args.room
            key = ConversationKey(room, args.identity)
            if args.action == "show":
                state = await store.load(key)
                if state.empty:
                    print(
                        f"no conversation for {args.identity!r} in {args.room!r}", file=sys.stderr
                    )
                    return 1
                out = {
                    "seq": state.seq,
                    "updated_ms": state.updated_ms,
                    "history": state.history,
                    "kept_for_resume": [s.seq for s in state.sent],
                    "ids": len(state.ids),
                    "running_turns": [lease.turn for lease in state.leases],
                }
                print(json.dumps(out, indent=2, ensure_ascii=False))
                return 0
            deleted = await store.delete(key)
            print("deleted" if deleted else "nothing to delete")
            return 0 if deleted else 1
        finally:
            await store.aclose()

    return asyncio.run(run())


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


def _room_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--room", required=True, help="room name")
    parser.add_argument("--identity", required=True, help="participant identity")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "up",
        help="local livekit-server + bot, ready to chat",
        description="Start what a first conversation needs: a loopback "
        "livekit-server when LIVEKIT_URL is unset, the offline local model "
        "(SmolLM2 via llama.cpp) when no LLM endpoint is configured, and the "
        "worker in development mode.",
    )
    _ready_option(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "start",
        help="run the production worker",
        description="Run the production worker: registers with LiveKit and "
        "serves every room it is dispatched to.",
    )
    _ready_option(p)
    # one of BOT_PROCESSES' processes (worker/processes.py)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "dev",
        help="run the worker for local development",
        description="Run the worker in development mode: no load shedding, "
        "health server on a random loopback port.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    _ready_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "chat",
        help="chat with the bot from the terminal",
        description="Join a room as a chat client and talk to the bot over the "
        "real protocol. Interactive by default; --send for scripts (exit code "
        "0 when the turn completes, 1 otherwise).",
    )
    _room_options(p)
    p.add_argument("--send", metavar="TEXT", help="send one message, print the reply, exit")
    p.add_argument("--topic", help="data topic (default: the first of BOT_TOPICS)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser(
        "web",
        help="serve the chat page and a token endpoint",
        description="Serve the chat page (GET /) and a LiveKit-style token endpoint "
        "(POST /token {room_name, participant_identity}) on BOT_WEB_HOST:BOT_WEB_PORT, "
        "for the configured LiveKit server (or the one `up` started). `up` already "
        "does this; use it next to `start`. Hands a token to anyone who asks: for local "
        "use and demos.",
    )
    p.add_argument("--port", type=int, help="port (default BOT_WEB_PORT, 8080; 0: any free)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser(
        "token",
        help="mint a client token",
        description="Print a token that lets a chat client join ROOM, publish "
        "data and subscribe (and dispatches the bot when BOT_AGENT_NAME is set).",
    )
    _room_options(p)
    p.add_argument("--name", default="", help="display name (default: the identity)")
    p.add_argument(
        "--ttl",
        type=_parse_ttl,
        default=timedelta(hours=6),
        help="validity, e.g. 30m, 6h, 2d (default 6h)",
    )
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "store",
        help="inspect or purge stored conversations",
        description="Stored conversations, in the store BOT_STORE names (default: "
        "the SQLite file in $XDG_DATA_HOME/lkbot). ROOM is '*' with "
        "BOT_CONVERSATION_SCOPE=identity.",
    )
    p.add_argument("action", choices=["list", "show", "delete", "purge-expired"])
    p.add_argument("room", nargs="?", help="the room (show, delete)")
    p.add_argument("identity", nargs="?", help="the participant identity (show, delete)")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser(
        "schema",
        help="print the protocol's JSON Schema",
        description="Print the JSON Schema of both directions (discriminated on `type`).",
    )
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
