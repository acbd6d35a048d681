"""JSON Schema of both directions, generated from the models (the single source of truth)."""

from __future__ import annotations

import json
from typing import Any

from .inbound import CLIENT_ADAPTER
from .outbound import BOT_ADAPTER
from .version import PROTOCOL_VERSION


def protocol_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"lkbot wire protocol v{PROTOCOL_VERSION}",
        "client_to_bot": CLIENT_ADAPTER.json_schema(),
        "bot_to_client": BOT_ADAPTER.json_schema(),
    }


def schema_text() -> str:
    return json.dumps(protocol_schema(), indent=2, sort_keys=True) + "\n"
