"""HTTP errors: every failure is ``{"error": {"code", "message", "hint"}}`` with a 4xx status (503 and
504 for the service itself), never a 500 page or a traceback."""

from __future__ import annotations

from typing import Any

from pinembed.errors import (
    InputError,
    ModelMismatchError,
    PinembedError,
    PinNotFoundError,
    StorageConfigError,
    UsageError,
)


class ApiError(Exception):
    """An error response: ``status``, a short machine ``code``, a message and a hint."""

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {"error": {"code": self.code, "message": self.message, "hint": self.hint}}


def bad_request(message: str, hint: str = "", code: str = "bad_parameter") -> ApiError:
    """A 400: a parameter that is missing, of the wrong type or out of range."""
    return ApiError(400, code, message, hint)


#: InputError codes (ingestion's) of an upload: too many pixels is "too large", the rest "not an image".
_TOO_LARGE = {"too_large"}


def from_pinembed(e: PinembedError) -> ApiError:
    """A library error as an HTTP error (unknown pin 404, bad argument 400, bad upload 415/413)."""
    if isinstance(e, PinNotFoundError):
        return ApiError(404, "pin_not_found", e.message, e.hint)
    if isinstance(e, InputError):
        if e.error in _TOO_LARGE:
            return ApiError(413, "image_too_large", e.message, e.hint or "send a smaller image")
        return ApiError(415, "not_an_image", e.message, e.hint or "send a JPEG, PNG, WebP, GIF, HEIC or AVIF image")
    if isinstance(e, ModelMismatchError | StorageConfigError):
        return ApiError(503, "unavailable", e.message, e.hint)
    if isinstance(e, UsageError):
        return ApiError(400, "bad_parameter", e.message, e.hint)
    return ApiError(503, "unavailable", e.message, e.hint or "try again; the server log says more")
