"""What a ``pinembed serve`` process is allowed to do: one frozen object, built by the CLI or by tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from pinembed.ingestion.image_decode import DEFAULT_MAX_PIXELS

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024
TIME_LIMIT_S = 30.0


@dataclass(frozen=True)
class ServeSettings:
    """Limits and switches of the service (defaults are the CLI's)."""

    token: str | None = None  # every /api request needs it (Bearer header or ?token=)
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are named
    loopback_only: bool = True  # bound to 127.0.0.1/::1: refuse other Host headers (DNS rebinding)
    max_upload_bytes: int = MAX_UPLOAD_BYTES  # a request body larger than this is a 413
    max_json_bytes: int = MAX_JSON_BYTES  # a body that is not multipart (a session's JSON) larger than this is a 413
    max_pixels: int = DEFAULT_MAX_PIXELS  # an uploaded image with more pixels is a 413 (the ingestion rule)
    #: the pixels of all the images of one request together (read from their headers, before decoding)
    max_request_pixels: int = DEFAULT_MAX_PIXELS
    time_limit_s: float = TIME_LIMIT_S  # a request taking longer is a 504, and its work stops at its next step
    workers: int = 8  # requests' blocking work runs in at most this many threads at a time
    #: requests answered 504 whose work still runs (a step that cannot stop); past this, new ones are 503 at once
    max_abandoned: int = 4
    header_timeout_s: float = 10.0  # a connection that has not sent a request's headers in this time is closed
    keep_alive_s: float = 5.0  # an idle connection between requests is closed after this
    reload_interval_s: float = 1.0  # how often the database is checked for a refresh or a model switch
    probe_interval_s: float = 10.0  # how often every table is read for /api/health ("degraded" when one fails)
    thumb_cache_bytes: int = 64 * 1024 * 1024  # thumbnails kept in memory (LRU)
    #: the pins' vectors and cards held in memory when they take at most this (None: a quarter of the
    #: machine's memory; 0: never): related pins in one LanceDB query (store/resident.py)
    memory_mb: float | None = None
    device: str | None = None
    precision: str | None = None
    storage_options: dict[str, str] | None = field(default=None, hash=False)

    def memory_budget_mb(self) -> float:
        """``memory_mb``, or a quarter of the machine's physical memory when it is None."""
        if self.memory_mb is not None:
            return float(self.memory_mb)
        import os

        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 4e6
        except (ValueError, OSError, AttributeError):  # no sysconf (Windows): be modest
            return 1024.0
