"""Protocol error codes: the fixed list from PROTOCOL.md, with their defaults."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    RESUME_GAP = "resume_gap"
    LLM_UNAVAILABLE = "llm_unavailable"
    LLM_TIMEOUT = "llm_timeout"
    INTERNAL_ERROR = "internal_error"


# Whether sending the same request again, unchanged, can succeed.
RETRYABLE: dict[ErrorCode, bool] = {
    ErrorCode.INVALID_JSON: False,
    ErrorCode.INVALID_MESSAGE: False,
    ErrorCode.UNKNOWN_TYPE: False,
    ErrorCode.UNSUPPORTED_VERSION: False,
    ErrorCode.PAYLOAD_TOO_LARGE: False,
    ErrorCode.RATE_LIMITED: True,
    ErrorCode.BUSY: True,
    ErrorCode.DUPLICATE_CONFLICT: False,
    ErrorCode.RESUME_GAP: False,
    ErrorCode.LLM_UNAVAILABLE: True,
    ErrorCode.LLM_TIMEOUT: True,
    ErrorCode.INTERNAL_ERROR: True,
}
