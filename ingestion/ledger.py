"""Turning what went wrong with one input into a failure-ledger row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pinembed.errors import InputError


def safe_text(s: str, limit: int = 2000) -> str:
    """A string that Arrow can store: undecodable bytes replaced, length capped."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:limit]


def problem_rows(problems: Iterable[Any]) -> list[dict[str, Any]]:
    """Ledger rows for what a walk found but could not use (``discover.Problem``)."""
    return [failure_row(str(p.path), p.pin_id, InputError(p.message, stage=p.stage, error=p.error)) for p in problems]


def failure_row(uri: str, pin_id: str | None, exc: BaseException, stage: str | None = None) -> dict[str, Any]:
    """A ledger row for ``exc`` raised while handling ``uri``."""
    if isinstance(exc, InputError):
        stage, error, message = stage or exc.stage, exc.error, exc.message
    else:  # an unexpected error in one input must not stop the run; keep its type and text
        stage, error, message = stage or "read", type(exc).__name__, str(exc) or type(exc).__name__
    return {
        "uri": safe_text(uri),
        "pin_id": safe_text(pin_id) if pin_id is not None else None,
        "stage": stage,
        "error": error,
        "message": safe_text(message),
    }
