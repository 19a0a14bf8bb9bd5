"""Errors that carry their HTTP status and contract code; one middleware renders them.

Handlers and the modules below them raise these; nothing hand-builds error JSON.
The `detail` is one sentence a person can act on, and never contains care data.

The hierarchy (status, code):

    RelayError (400 bad_request)
    ├── BadRequestError (400 bad_request)
    ├── MalformedJsonError (400 malformed_json)
    ├── HeaderMismatchError (400 header_mismatch)
    ├── SignatureError (401 invalid_signature)
    │   ├── MissingSignatureError (401 missing_signature)
    │   ├── InvalidSignatureError (401 invalid_signature)
    │   ├── TimestampOutOfWindowError (401 timestamp_out_of_window)
    │   └── MalformedSignatureHeaderError (401 malformed_signature_header)
    ├── UnauthorizedError (401 unauthorized)
    ├── ForbiddenError (403 forbidden)
    ├── NotFoundError (404 not_found)
    ├── ConflictError (409)
    │   ├── EventIdConflictError (409 event_id_conflict)
    │   ├── NonceReusedError (409 nonce_reused)
    │   ├── AlreadyDoneError (409 already_done)
    │   ├── AlreadyAnsweredError (409 already_answered)
    │   └── NotFailedError (409 not_failed)
    ├── LinkExpiredError (410 link_expired)
    ├── RequestTimeoutError (408 request_timeout)
    ├── PayloadTooLargeError (413 payload_too_large)
    ├── UnsupportedMediaTypeError (415 unsupported_media_type)
    ├── InvalidPayloadError (422 invalid_payload)
    ├── UnsupportedEventTypeError (422 unsupported_event_type)
    ├── RateLimitedError (429 rate_limited)
    ├── InternalError (500 internal)
    └── UnavailableError (503 unavailable)
"""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    status = 400
    code = "bad_request"
    detail = "The request could not be understood."
    #: the connection cannot carry another request after this answer (part of a body is unread).
    closes_connection = False

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        self.detail = detail or type(self).detail
        if code is not None:
            self.code = code
        self.extra = extra
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}

    def headers(self) -> dict[str, str]:
        return {}


class BadRequestError(RelayError):
    status, code = 400, "bad_request"


class MalformedJsonError(RelayError):
    status, code = 400, "malformed_json"
    detail = "The body is not valid JSON (UTF-8, one object)."


class HeaderMismatchError(RelayError):
    status, code = 400, "header_mismatch"


class SignatureError(RelayError):
    """A 401 from signature checking; `code` is one of the contract's 401 codes."""

    status, code = 401, "invalid_signature"
    detail = "The signature does not match the body with any configured secret."


class MissingSignatureError(SignatureError):
    code = "missing_signature"
    detail = "The request carries no signature header; sign the raw body and send it."


class InvalidSignatureError(SignatureError):
    code = "invalid_signature"


class TimestampOutOfWindowError(SignatureError):
    code = "timestamp_out_of_window"
    detail = "The signature's timestamp is too far from the relay's clock; sign with the current time."


class MalformedSignatureHeaderError(SignatureError):
    code = "malformed_signature_header"
    detail = "The signature header is not in the expected form."


class UnauthorizedError(RelayError):
    status, code = 401, "unauthorized"
    detail = "Send 'Authorization: Bearer <token>' or the status token from the 202."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ForbiddenError(RelayError):
    status, code = 403, "forbidden"
    detail = "These credentials do not open this resource."


class NotFoundError(RelayError):
    status, code = 404, "not_found"
    detail = "Nothing is known under that id."


class ConflictError(RelayError):
    status = 409


class EventIdConflictError(ConflictError):
    code = "event_id_conflict"
    detail = "This event id was already received with a different body; send a new id for a new event."


class NonceReusedError(ConflictError):
    code = "nonce_reused"
    detail = "This security.nonce was already used by another event; use a fresh nonce per event."


class AlreadyDoneError(ConflictError):
    code = "already_done"
    detail = "This loop was already closed by a person."


class AlreadyAnsweredError(ConflictError):
    code = "already_answered"
    detail = "This agent already answered this loop; a 'not now' is no longer taken."


class ConsentRequiredError(ConflictError):
    code = "consent_required"
    detail = "No live consent grant (and, for M3, no explicit consent in the payload) covers this signal."


class NotFailedError(ConflictError):
    code = "not_failed"
    detail = "Only failed work can be retried; this row is still being tried or is done."


class LinkExpiredError(RelayError):
    status, code = 410, "link_expired"
    detail = "This link has expired; answer from the original message or ask for a new invitation."


class RequestTimeoutError(RelayError):
    status, code = 408, "request_timeout"
    closes_connection = True

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The body did not arrive within {seconds:g} seconds of the headers; send it in one go and retry."
        )


class PayloadTooLargeError(RelayError):
    status, code = 413, "payload_too_large"

    @classmethod
    def over(cls, limit: int) -> PayloadTooLargeError:
        return cls(f"The body is larger than {limit} bytes; send a smaller payload.")


class UnsupportedMediaTypeError(RelayError):
    status, code = 415, "unsupported_media_type"
    detail = "Send the body as 'Content-Type: application/json'."


class InvalidPayloadError(RelayError):
    """422 with a `fields` list of {"loc": [...], "msg": "..."}."""

    status, code = 422, "invalid_payload"
    detail = "The payload does not follow the contract; see 'fields'."

    def __init__(self, fields: list[dict[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail, fields=fields)


class UnsupportedEventTypeError(RelayError):
    status, code = 422, "unsupported_event_type"


class RateLimitedError(RelayError):
    status, code = 429, "rate_limited"
    detail = "Too many requests; wait as Retry-After says, then try again."

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InternalError(RelayError):
    """A fault of the relay's own (never the request's): the answer says so and nothing more."""

    status, code = 500, "internal"
    detail = "The relay failed on its side; check whether this was recorded before trying again."


class UnavailableError(RelayError):
    status, code = 503, "unavailable"
    detail = "Storage cannot take the write right now; nothing was recorded, retry after Retry-After."

    def __init__(self, detail: str | None = None, *, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
