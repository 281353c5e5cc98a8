"""Shared fixtures: a tiny open_clip checkpoint made here and loaded through open_clip's real code."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
import torch  # noqa: F401  (before anything loads decord: decord2's bundled NVBLAS breaks a later torch)

logging.getLogger().setLevel(logging.ERROR)  # open_clip logs "initialized randomly" for the tiny model

REPO = Path(__file__).resolve().parent.parent
# precision auto's verdicts (embedders/auto_precision.py) are cached per test session, not in ~/.cache:
# every run checks its models afresh, and CLI subprocesses share the session's verdicts
if "PINEMBED_CACHE_DIR" not in os.environ:
    import atexit
    import shutil

    os.environ["PINEMBED_CACHE_DIR"] = tempfile.mkdtemp(prefix="pinembed-cache-")
    atexit.register(shutil.rmtree, os.environ["PINEMBED_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_id(tmp_path_factory) -> str:
    """``open_clip:pinembed-tiny/<path>`` of a random-weight checkpoint saved for this session."""
    from pinembed.embedders.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny.pt", seed=0)


@pytest.fixture(scope="session")
def other_tiny_model_id(tmp_path_factory) -> str:
    """The same architecture with other random weights: another embedding space."""
    from pinembed.embedders.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("models2") / "tiny-seed1.pt", seed=1)


@pytest.fixture(scope="session")
def tiny(tiny_model_id):
    """The loaded tiny embedder."""
    from pinembed.embedders import get_embedder

    return get_embedder(tiny_model_id, "cpu")


@pytest.fixture()
def db(tmp_path) -> str:
    """A fresh database path in a temp folder."""
    return str(tmp_path / "pins.lance")


@pytest.fixture(scope="session")
def sample_media() -> Path:
    """The committed sample media folder."""
    return REPO / "sample_media"


@pytest.fixture()
def media_server():
    """A real HTTP server on 127.0.0.1 for media over http(s) (tests/media_server.py), stopped after the
    test: ``url = media_server.add("/a.jpg", body=jpeg, content_type="image/jpeg")``; ``delay_s``, ``drip``,
    ``size``, ``redirect``, ``fail_first`` ... for the bad cases; ``media_server.hits(path)`` counts."""
    from media_server import MediaServer

    with MediaServer() as server:
        yield server
