"""The peer: LiveKit Agents' own AgentSession in text-only mode, on the same LLM.

Text in on `lk.chat`, text out on `lk.transcription`; no audio, no VAD. Run as a worker
like ours: `python -m bench.peer_agent` (env: LIVEKIT_*, OPENAI_BASE_URL, PEER_AGENT_NAME).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, room_io
from livekit.plugins import openai

from bot.logs import setup_logging

log = logging.getLogger("peer")


async def entrypoint(ctx: JobContext) -> None:
    session: AgentSession[None] = AgentSession(
        llm=openai.LLM(
            model="scripted", base_url=os.environ["OPENAI_BASE_URL"], api_key="x", max_retries=0
        ),
    )
    await session.start(
        agent=Agent(instructions="You are a helpful assistant."),
        room=ctx.room,
        room_options=room_io.RoomOptions(
            text_input=True,
            text_output=True,
            audio_input=False,
            audio_output=False,
            video_input=False,
        ),
    )


async def main() -> None:
    server = AgentServer(
        port=0,
        load_threshold=float(os.environ.get("BOT_LOAD_THRESHOLD", "0.99")),
        num_idle_processes=2,
    )
    server.rtc_session(entrypoint, agent_name=os.environ.get("PEER_AGENT_NAME", "agents-peer"))
    ready = os.environ.get("PEER_READY_FILE")
    if ready:
        server.on("worker_registered", lambda worker_id, *_: Path(ready).write_text(worker_id))
    run = asyncio.create_task(server.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait({run, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    await server.aclose()


if __name__ == "__main__":
    setup_logging(os.environ.get("BOT_LOG_LEVEL", "INFO"))
    asyncio.run(main())
