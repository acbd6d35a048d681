"""The LLM client: livekit-plugins-openai against any OpenAI-compatible endpoint."""

from __future__ import annotations

from livekit.agents import NOT_GIVEN
from livekit.plugins import openai

from ..config import ConfigError, Settings


def build_llm(settings: Settings) -> openai.LLM:
    key = settings.openai_api_key
    if not key and settings.openai_base_url:
        key = "not-needed"  # local OpenAI-compatible servers accept any key
    if not key:
        raise ConfigError(
            "OPENAI_API_KEY: not set (BOT_LLM_MODE=openai). Set it, and optionally "
            "OPENAI_BASE_URL and BOT_MODEL, or use BOT_LLM_MODE=auto for the local model"
        )
    # The request timeout comes from the engine's APIConnectOptions (BOT_LLM_TIMEOUT);
    # retries are the engine's too, so the HTTP client itself never retries.
    return openai.LLM(
        model=settings.model,
        api_key=key,
        base_url=settings.openai_base_url or NOT_GIVEN,
        temperature=settings.temperature if settings.temperature is not None else NOT_GIVEN,
        max_retries=0,
    )
