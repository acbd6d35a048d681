"""Settings from the environment and `.env`. Bad values fail at start, naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_INSTRUCTIONS = (
    "You are a helpful, concise assistant in a LiveKit chat. "
    "Answer in plain text. Use the tools when they help."
)
ToolEventLevel = Literal["full", "name", "hidden"]


class ConfigError(Exception):
    """Raised with one human sentence per bad setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BOT_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    # LiveKit connection (standard LiveKit variable names).
    livekit_url: str = Field("", validation_alias=AliasChoices("LIVEKIT_URL", "BOT_LIVEKIT_URL"))
    livekit_api_key: str = Field(
        "", validation_alias=AliasChoices("LIVEKIT_API_KEY", "BOT_LIVEKIT_API_KEY")
    )
    livekit_api_secret: str = Field(
        "",
        validation_alias=AliasChoices("LIVEKIT_API_SECRET", "BOT_LIVEKIT_API_SECRET"),
        repr=False,
    )
    agent_name: str = ""  # empty: automatic dispatch to every new room

    # The LLM: any OpenAI-compatible endpoint, or the offline local model.
    # auto: the endpoint if OPENAI_API_KEY or OPENAI_BASE_URL is set, else local.
    llm_mode: Literal["auto", "openai", "local"] = "auto"
    llm_tools: bool = True  # off for models that cannot call tools (the local one)
    local_model_path: Path | None = None  # another GGUF file for local mode
    local_threads: Annotated[int, Field(ge=1)] | None = None
    openai_api_key: str = Field(
        "", validation_alias=AliasChoices("OPENAI_API_KEY", "BOT_OPENAI_API_KEY"), repr=False
    )
    openai_base_url: str = Field(
        "", validation_alias=AliasChoices("OPENAI_BASE_URL", "BOT_OPENAI_BASE_URL")
    )
    model: str = "gpt-4o-mini"
    llm_timeout: Annotated[float, Field(gt=0)] = 30.0
    llm_retries: Annotated[int, Field(ge=0, le=5)] = 1
    # how a turn's request is streamed: `direct` (one HTTP stream to the OpenAI client's
    # endpoint, bot/llm/stream.py) or `agents` (livekit-agents' LLM.chat; more CPU per turn)
    llm_stream: Literal["direct", "agents"] = "direct"
    turn_timeout: Annotated[float, Field(gt=0)] = 300.0  # a whole turn, tools included
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    instructions: str = DEFAULT_INSTRUCTIONS
    instructions_file: Path | None = None

    # Protocol and limits.
    topics: Annotated[tuple[str, ...], NoDecode] = ("lkbot",)
    max_packet: Annotated[int, Field(ge=1024, le=65536)] = 15000
    max_text_chars: Annotated[int, Field(ge=1)] = 8000
    max_message_bytes: Annotated[int, Field(ge=1024)] = 262144
    max_queue: Annotated[int, Field(ge=0)] = 8
    rate_burst: Annotated[int, Field(ge=1)] = 20
    rate_per_second: Annotated[float, Field(gt=0)] = 5.0
    dedupe_window: Annotated[int, Field(ge=1)] = 512
    resume_window: Annotated[int, Field(ge=1)] = 256  # messages kept for session.hello resume
    resume_window_bytes: Annotated[int, Field(ge=1024)] = 1 << 20  # ... and their bytes
    max_metadata_bytes: Annotated[int, Field(ge=0)] = 4096  # chat.message.metadata as JSON
    history_page_bytes: Annotated[int, Field(ge=65536)] = 262144  # one history.page's items
    history_max_items: Annotated[int, Field(ge=2)] = 200
    context_max_items: Annotated[int, Field(ge=2)] = 40
    delta_interval_ms: Annotated[int, Field(ge=0)] = 40
    delta_max_chars: Annotated[int, Field(ge=16)] = 1500
    # `turn.status thinking` at a turn's start only once the model has not answered for
    # this long (0: at once; turn.start already says the model is being asked)
    thinking_after_ms: Annotated[int, Field(ge=0)] = 100

    # Conversations: where they are kept (sqlite:///file.db, redis://host:port/0,
    # memory; empty: $XDG_DATA_HOME/lkbot/conversations.db), for how long after the last
    # change (seconds, 0: until deleted), and whose they are: a sender in a room
    # (`room`), or a sender in any room (`identity`).
    store: str = ""
    store_ttl: Annotated[float, Field(ge=0)] = 0.0
    # over this many conversations, the least recently claimed are deleted (0: no cap)
    store_max_conversations: Annotated[int, Field(ge=0)] = 100_000
    # a bot message is published once the store has it; a store slower than this (or
    # failing) is not waited for: messages go out unstored until a write succeeds
    store_publish_wait: Annotated[float, Field(gt=0)] = 5.0
    conversation_scope: Literal["room", "identity"] = "room"

    # Tools.
    builtin_tools: Annotated[tuple[str, ...], NoDecode] = (
        "current_time",
        "calculate",
        "participants",
    )
    tools_module: str = ""
    max_tool_steps: Annotated[int, Field(ge=0, le=32)] = 4
    tool_timeout: Annotated[float, Field(gt=0)] = 15.0
    tool_events: Annotated[dict[str, ToolEventLevel], NoDecode] = Field(default_factory=dict)
    # Tools a client runs itself (protocol v1.1, declared in session.hello): how long
    # the bot waits for a tool.result, how many a client may declare, how large one
    # declared tool (its JSON) and one result may be.
    # Per-participant grants (bot/llm/tools/grants.py): tools offered only to those whose
    # lkbot.grants attribute (a JWT signed with BOT_GRANTS_SECRET) grants them ("*": all)
    granted_tools: Annotated[tuple[str, ...], NoDecode] = ()
    grants_secret: SecretStr = SecretStr("")
    # MCP servers whose tools the model may call: a JSON list, inline or a file's path
    # (bot/llm/tools/mcp.py, docs/tools.md)
    mcp_servers: str = ""
    # Tools that run only after the user said yes (tool.approval_request / tool.approve;
    # any source, "*": all), and how long a request waits for the answer (seconds).
    approval_tools: Annotated[tuple[str, ...], NoDecode] = ()
    approval_timeout: Annotated[float, Field(gt=0)] = 300.0
    client_tool_timeout: Annotated[float, Field(gt=0)] = 30.0
    max_client_tools: Annotated[int, Field(ge=0, le=128)] = 16
    max_tool_schema_bytes: Annotated[int, Field(ge=256)] = 8192
    max_tool_result_bytes: Annotated[int, Field(ge=256)] = 32768

    # LiveKit's own chat UIs (lk.chat in, lk.transcription out, lk.agent.state).
    lk_chat: bool = True

    # The chat page and LiveKit-style token endpoint (`bot up`, `bot web`).
    web_host: str = "127.0.0.1"
    web_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    token_ttl: Annotated[float, Field(ge=60)] = 3600.0  # seconds a token from /token is valid
    web_cors_origin: str = ""  # another origin allowed to call /token ("*": any); empty: none
    # let clients set their own attributes (lkbot.client: the bot sees them join at once)
    token_can_update_metadata: bool = True
    # who may have a token (bot/web/guard.py, docs/security.md): "" (nobody is asked:
    # loopback only), "secret" (Authorization: Bearer BOT_WEB_AUTH_SECRET) or
    # "module:function" (a hook to the app's login that returns the caller's identity)
    web_auth: str = ""
    web_auth_secret: SecretStr = SecretStr("")
    web_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()  # Host: names served
    # an identity /token issued to one browser is not issued to another for this long
    web_binding_ttl: Annotated[float, Field(gt=0)] = 86400.0
    # identities nobody gets from /token, besides agent-… (LiveKit's agent identities)
    reserved_identity_prefixes: Annotated[tuple[str, ...], NoDecode] = ()

    # The worker process.
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    # where the worker's HTTP port listens: all interfaces by default, so that an
    # orchestrator's probes and a metrics scraper reach it (127.0.0.1: this host only)
    http_host: str = "0.0.0.0"
    # Worker processes `bot start` runs, each with its own rooms (0: one per core).
    processes: Annotated[int, Field(ge=0, le=256)] = 0
    # Capacity: the worker's load is its rooms against this, never the box's CPU.
    max_rooms: Annotated[int, Field(ge=1)] = 100
    # Rooms joined at once; more wait their turn (WebRTC setup is CPU-bound).
    join_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    # livekit-server's agents.target_load: it sends a room only to a worker whose
    # load is below it; the load is scaled so that this means max_rooms exactly.
    livekit_target_load: Annotated[float, Field(gt=0, le=1)] = 0.7
    # The dispatch watchdog: seconds between scans (0: off), and how long a dispatch
    # that LiveKit accepted may take to bring its bot before another is made.
    watchdog_interval: Annotated[float, Field(ge=0)] = 2.0
    watchdog_grace: Annotated[float, Field(gt=0)] = 20.0
    # The slow reconciliation scan of every room (seconds): dispatches LiveKit never
    # delivered, rooms made before any worker ran. Dead workers' rooms and rooms
    # LiveKit's webhooks point at are seen to every watchdog_interval.
    watchdog_scan_interval: Annotated[float, Field(gt=0)] = 60.0
    # A worker's lease in the store, renewed every quarter of it: a worker that stops
    # renewing (killed, hung, cut off from the store) counts as dead this long after
    # its last renewal, and the dispatch watchdog replaces its bots.
    worker_lease_ttl: Annotated[float, Field(ge=2)] = 8.0
    # SIGTERM: each room is handed to another worker's bot (where one is registered)
    # once its running turns end, for at most this long; then the worker leaves.
    drain_timeout: Annotated[float, Field(ge=0)] = 60.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator(
        "topics",
        "builtin_tools",
        "web_allowed_hosts",
        "reserved_identity_prefixes",
        "granted_tools",
        "approval_tools",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("grants_secret")
    @classmethod
    def _grants_secret_long_enough(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (an HS256 key)")
        return value

    @field_validator("tool_events", mode="before")
    @classmethod
    def _parse_tool_events(cls, value: object) -> object:
        # "get_weather=name,secret_tool=hidden,*=full"
        if isinstance(value, str):
            pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("expected name=full|name|hidden, comma-separated")
            return {k.strip(): v.strip() for k, v in pairs}
        return value

    @field_validator("topics")
    @classmethod
    def _topics_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one topic is needed")
        return value

    @model_validator(mode="after")
    def _delta_fits_packet(self) -> Settings:
        # worst case 6 bytes per character (JSON \u escapes) plus the envelope
        if self.delta_max_chars * 6 + 512 > self.max_packet:
            raise ValueError(
                f"BOT_DELTA_MAX_CHARS={self.delta_max_chars} can exceed "
                f"BOT_MAX_PACKET={self.max_packet}; lower it to "
                f"{(self.max_packet - 512) // 6} or less"
            )
        return self

    def resolved_llm_mode(self) -> Literal["openai", "local"]:
        if self.llm_mode != "auto":
            return self.llm_mode
        return "openai" if self.openai_api_key or self.openai_base_url else "local"

    def system_prompt(self) -> str:
        if self.instructions_file is not None:
            return self.instructions_file.read_text(encoding="utf-8").strip()
        return self.instructions

    def needs_approval(self, tool: str) -> bool:
        return tool in self.approval_tools or "*" in self.approval_tools

    def tool_event_level(self, tool: str) -> ToolEventLevel:
        return self.tool_events.get(tool, self.tool_events.get("*", "full"))


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"BOT_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read settings; on bad values raise ConfigError naming each variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        lines = []
        for err in e.errors(include_url=False, include_input=False):
            field = str(err["loc"][0]) if err["loc"] else ""
            name = _env_name(field) if field else "configuration"
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    if settings.instructions_file is not None and not settings.instructions_file.is_file():
        raise ConfigError(f"BOT_INSTRUCTIONS_FILE: no such file: {settings.instructions_file}")
    return settings
