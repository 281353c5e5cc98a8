"""Errors raised by pinembed. Each carries a ``hint`` that says what to do about it.

The CLI prints ``message`` and ``hint`` (never a traceback) and exits with ``exit_code``.
"""

from __future__ import annotations


class PinembedError(Exception):
    """Base class of every pinembed error."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message


class ModelNotFoundError(PinembedError):
    """The model id names weights that cannot be found or fetched."""


class ModelMismatchError(PinembedError):
    """The database was built by another embedding space than the one asked for."""

    exit_code = 2


class PinNotFoundError(PinembedError):
    """A query named a pin id that the database does not hold."""

    exit_code = 2


class UsageError(PinembedError):
    """The request itself is wrong: a bad argument, a missing source folder."""

    exit_code = 2


class StoreError(PinembedError):
    """The database could not be opened, read or written."""


class InputError(PinembedError):
    """One input file could not be used; the run records it in the failure ledger and goes on."""

    def __init__(self, message: str, hint: str = "", *, stage: str = "read", error: str = "") -> None:
        super().__init__(message, hint)
        self.stage = stage
        self.error = error or type(self).__name__


class LockedError(PinembedError):
    """Another pinembed process is writing to the same database."""

    exit_code = 4
