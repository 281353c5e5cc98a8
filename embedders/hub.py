"""Reaching the Hugging Face hub, or knowing at once that we cannot.

open_clip tags and ``hf:`` ids resolve through huggingface_hub, which retries an unreachable hub for
about a minute and logs every retry. Before that happens we look in the HF cache; when the weights are
not there and the hub cannot be reached (``HF_HUB_OFFLINE`` set, or a connection to ``$HF_ENDPOINT``
fails within ``PROBE_TIMEOUT_S``), the embedder raises one ModelNotFoundError at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

from pinembed.errors import ModelNotFoundError

#: How long a reachability probe of the hub may take.
PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(v, "").strip().upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT``, default https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (name lookup
    included: the probe runs in a thread, so a hanging DNS cannot hold us longer)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                result.append(True)
        except (OSError, ValueError):
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def unreachable_reason(url: str | None = None) -> str | None:
    """Why the hub (or ``url``) cannot be used now, or None when it can."""
    if offline():
        return "HF_HUB_OFFLINE is set"
    target = url or endpoint()
    if not reachable(target):
        return f"{urlsplit(target).netloc or target} cannot be reached (no network?)"
    return None


def cache_dir() -> str:
    """The hub cache folder huggingface_hub uses ($HF_HUB_CACHE, else $HF_HOME/hub)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def cached(repo_id: str, filenames: Sequence[str]) -> str | None:
    """The local path of the first of ``filenames`` of ``repo_id`` that the HF cache holds, or None."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        try:
            path = try_to_load_from_cache(repo_id, name)
        except Exception:  # a malformed repo id: not cached
            return None
        if isinstance(path, str):
            return path
    return None


def missing(repo_id: str, filenames: Sequence[str], url: str | None = None) -> str | None:
    """None when ``repo_id`` has one of ``filenames`` cached or the hub can be reached; otherwise the
    reason it cannot be had, for the one error message."""
    if cached(repo_id, filenames):
        return None
    reason = unreachable_reason(url)
    if reason is None:
        return None
    return f"they are not in the Hugging Face cache ({cache_dir()}) and {reason}"


def nothing_cached() -> bool:
    """True when this machine holds no hub model at all (no HF cache entries, nothing in ~/.cache/clip):
    then no tag can be cached, and that is known without importing open_clip or transformers (whose
    imports take seconds)."""
    wanted = {cache_dir(): "models--", os.path.expanduser("~/.cache/clip"): ""}  # open_clip's URL downloads
    for folder, prefix in wanted.items():
        try:
            with os.scandir(folder) as it:
                if any(e.name.startswith(prefix) for e in it):
                    return False
        except OSError:
            continue
    return True


def precheck(model_id: str, local: str) -> None:
    """Fail at once, before the heavy imports, when ``model_id`` (a hub model) cannot be had: nothing
    is cached on this machine and the hub cannot be reached. Otherwise the embedder checks precisely."""
    if not nothing_cached():
        return
    reason = unreachable_reason()
    if reason is not None:
        raise ModelNotFoundError(
            f"the weights of {model_id} are not on this machine: they are not in the Hugging Face cache "
            f"({cache_dir()}, which holds no models) and {reason}", fixes(local))


def fixes(local: str) -> str:
    """The hint naming every way out; ``local`` is the model id form that takes a local path."""
    return (
        "fetch them once where the network reaches the hub (or copy that machine's HF cache to $HF_HOME "
        "here) and set HF_HUB_OFFLINE=1 to use the cache without the network; or give a local checkpoint: "
        f"--model {local}; or use the bundled model: --model nano"
    )


@contextmanager
def quiet() -> Iterator[None]:
    """Silence huggingface_hub's retry warnings (each printed twice) and open_clip's download error
    log while a model loads; the failure, if any, is raised as one error."""
    loggers = [logging.getLogger("huggingface_hub"), logging.getLogger()]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def brief(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error's message, shortened at a word boundary (never mid-word)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + " ..."
