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


class StorageConfigError(UsageError):
    """The storage URI or its options are wrong: an unknown scheme, a missing bucket, credentials the
    object store refuses, an http endpoint without ``allow_http``."""


class FaultError(PinembedError):
    """The machine or the object store failed under the command: no space left, a read-only file
    system, permission denied, the object store unreachable. Every commit before it is whole, so the
    same command run again goes on from there. ``committed``: pins this run committed before it."""

    exit_code = 5

    def __init__(self, what: str, place: str, hint: str = "", *, reason: str = "fault",
                 committed: int | None = None) -> None:
        self.what, self.place, self.reason, self.committed = what, place, reason, committed
        super().__init__(self._line(), hint)

    def _line(self) -> str:
        line = f"{self.what}: {self.place}"
        if self.committed == 0:
            line += "; no pins were committed"
        elif self.committed is not None:
            line += f"; the {self.committed} pin{'' if self.committed == 1 else 's'} committed before it are kept"
        return line

    def with_committed(self, committed: int | None) -> FaultError:
        """This error with the count of pins committed before it (a count already known is kept)."""
        if self.committed is None and committed is not None:
            self.committed = committed
            self.message = self._line()
            self.args = (self.message,)
        return self


class DamagedError(FaultError):
    """A table of the database is damaged: a data file or manifest is missing, truncated or garbled.
    ``table``: its name (None when the error did not say and it could not be found)."""

    def __init__(self, table: str | None, what: str, place: str) -> None:
        self.table = table
        named = f"the table {table!r}" if table else "a table"
        hint = (f"`pinembed doctor --db {place}` checks every table; `pinembed doctor --db {place} --restore` "
                "goes back to the newest readable version of each (and counts the pins lost; a refresh "
                "re-embeds them)")
        super().__init__(f"the database is damaged: {named} {what}", place, hint, reason="damaged")
