"""An OpenAI-compatible chat completions server for tests and benchmarks.

Real HTTP (aiohttp), SSE streaming, tool calls, usage, scripted errors and delays.
Run it standalone: `python -m bot.testing.llm_server --port 8089 [--ttft-ms 300 --tps 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from aiohttp import web

from .script import Plan, plan_for, split_text


class ScriptedLLMServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **defaults: Any) -> None:
        self._host = host
        self._port = port
        self.defaults = defaults
        self.requests: list[dict[str, Any]] = []
        self.peers: list[Any] = []  # each request's client address (which connection)
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        self._app = app

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        plan = plan_for(body.get("messages", []), self.defaults)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.status != 200:
            return web.json_response(
                {"error": {"message": f"scripted status {plan.status}", "type": "scripted"}},
                status=plan.status,
            )
        if not body.get("stream"):
            return web.json_response(
                {"error": {"message": "only stream=true is served"}}, status=400
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await _stream(request, resp, plan, body)
        return resp


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def _send(resp: web.StreamResponse, obj: dict[str, Any] | str) -> None:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    await resp.write(f"data: {data}\n\n".encode())


async def _hang_until_disconnect(request: web.Request) -> None:
    # bounded by the client: it gives up (read timeout, cancel) and closes the socket
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _stream(
    request: web.Request, resp: web.StreamResponse, plan: Plan, body: dict[str, Any]
) -> None:
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]
    model = body.get("model", "scripted")
    if plan.ttft:
        await asyncio.sleep(plan.ttft)
    await _send(resp, _chunk(cid, model, {"role": "assistant", "content": ""}, None))
    pieces = split_text(plan.text, plan.chunk_chars)
    for i, piece in enumerate(pieces):
        await _send(resp, _chunk(cid, model, {"content": piece}, None))
        if plan.stall:
            await _hang_until_disconnect(request)
            return
        if plan.tps and i + 1 < len(pieces):
            await asyncio.sleep(1 / plan.tps)
    for index, call in enumerate(plan.calls):
        delta = {
            "tool_calls": [
                {
                    "index": index,
                    "id": f"call_{uuid.uuid4().hex[:8]}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.args)},
                }
            ]
        }
        await _send(resp, _chunk(cid, model, delta, None))
    finish = "tool_calls" if plan.calls else "stop"
    await _send(resp, _chunk(cid, model, {}, finish))
    if plan.usage and (body.get("stream_options") or {}).get("include_usage"):
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion = len(pieces) + len(plan.calls)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        await _send(
            resp,
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": usage,
            },
        )
    await _send(resp, "[DONE]")


async def _serve(args: argparse.Namespace) -> None:
    defaults: dict[str, Any] = {}
    if args.ttft_ms:
        defaults["ttft_ms"] = args.ttft_ms
    if args.tps:
        defaults["tps"] = args.tps
    if args.tokens:
        defaults["tokens"] = args.tokens
    server = ScriptedLLMServer(host=args.host, port=args.port, **defaults)
    await server.start()
    print(f"scripted LLM server on {server.base_url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--ttft-ms", type=float, default=0, help="delay before the first token")
    parser.add_argument("--tps", type=float, default=0, help="tokens per second (0: no pacing)")
    parser.add_argument("--tokens", type=int, default=0, help="reply length in tokens (0: echo)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
