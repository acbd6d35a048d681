"""The protocol version: one constant, used for `v`, `session.ready.protocol` and the
bot's `lkbot.protocol` attribute."""

from __future__ import annotations

from typing import Final

# The major version is `v` on every message; a change here is a new wire protocol.
PROTOCOL_VERSION: Final = 1
# Additive changes (new optional fields, new features) bump the minor version.
PROTOCOL_MINOR: Final = 0
PROTOCOL_LABEL: Final = f"{PROTOCOL_VERSION}.{PROTOCOL_MINOR}"
