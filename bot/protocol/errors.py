"""The exceptions that carry protocol error codes. The dispatcher is the one place that
turns them into `error` messages; clients may raise or catch them too."""

from __future__ import annotations

from .codes import RETRYABLE, ErrorCode
from .outbound import ErrorDetail, ErrorInfo


class BotError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        reply_to: str | None = None,
        details: list[ErrorDetail] | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # Only set where no validated message exists to take the id from (codec errors).
        self.reply_to = reply_to
        self.details = details
        self.retry_after_ms = retry_after_ms

    @property
    def retryable(self) -> bool:
        return RETRYABLE[self.code]

    def info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, retryable=self.retryable)


class InvalidJson(BotError):
    code = ErrorCode.INVALID_JSON


class InvalidMessage(BotError):
    code = ErrorCode.INVALID_MESSAGE


class UnknownType(BotError):
    code = ErrorCode.UNKNOWN_TYPE


class UnsupportedVersion(BotError):
    code = ErrorCode.UNSUPPORTED_VERSION


class PayloadTooLarge(BotError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class RateLimited(BotError):
    code = ErrorCode.RATE_LIMITED


class Busy(BotError):
    code = ErrorCode.BUSY


class DuplicateConflict(BotError):
    code = ErrorCode.DUPLICATE_CONFLICT


class ResumeGap(BotError):
    code = ErrorCode.RESUME_GAP


class LlmUnavailable(BotError):
    code = ErrorCode.LLM_UNAVAILABLE


class LlmTimeout(BotError):
    code = ErrorCode.LLM_TIMEOUT


class InternalError(BotError):
    code = ErrorCode.INTERNAL_ERROR
