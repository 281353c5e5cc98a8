"""Offline, a hub model fails fast: one clear error naming the fixes, in under 10 s, no retries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from pinembed.embedders.hub import brief

from helpers import save_image

DEFAULT = "open_clip:ViT-B-32/laion2b_s34b_b79k"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def _pinembed(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE", "HF_HOME")}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pinembed.cli.main", *args], capture_output=True, text=True,
                       timeout=120, env={**base, **env})
    return r, time.perf_counter() - t


@pytest.fixture()
def src(tmp_path):
    save_image(tmp_path / "media" / "x.jpg")
    return tmp_path / "media"


@pytest.mark.parametrize("how", ["unreachable", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("model", [DEFAULT, "hf:openai/clip-vit-base-patch32"])
def test_uncached_hub_model_offline_fails_fast_with_one_message(tmp_path, src, model, how):
    env = {"HF_HOME": str(tmp_path / "empty-hf-home")}  # no cache to find
    env.update({"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"} if how == "unreachable" else {"HF_HUB_OFFLINE": "1"})
    r, seconds = _pinembed(["ingest", str(src), "--db", str(tmp_path / "pins.lance"), "--model", model], env)
    assert r.returncode == 1, r.stderr
    assert seconds < 10, f"took {seconds:.1f}s"
    err = r.stderr.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("error: ") and err[1].startswith("hint: "), r.stderr
    assert "Traceback" not in r.stderr and "Retry" not in r.stderr
    assert "not in the Hugging Face cache" in err[0]
    assert ("HF_HUB_OFFLINE is set" if how == "HF_HUB_OFFLINE" else "cannot be reached") in err[0]
    for fix in ("HF cache", "HF_HUB_OFFLINE=1", "--model nano", "/path/to/"):
        assert fix in err[1]


def test_long_messages_are_cut_between_words():
    msg = "Failed to download file " + "averyveryverylongword " * 30
    out = brief(RuntimeError(msg + "\nsecond line"), limit=100)
    assert len(out) <= 104 and out.endswith(" ...")
    assert out[:-4].split()[-1] in msg.split()  # the last word kept is whole
    assert brief(RuntimeError("short\nmore")) == "short"
    assert brief(RuntimeError()) == "RuntimeError"
