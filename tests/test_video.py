"""Video sampling, reduced-size decoding, blank frames and pooling arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from pinembed.errors import InputError
from pinembed.ingestion.decode_pool import DecodePool
from pinembed.ingestion.pooling import pool, pool_frames
from pinembed.ingestion.video_decode import (
    VideoParams,
    decode_video,
    frame_indices,
    is_blank,
    reduced_size,
    sample_times,
)

from helpers import write_video


@pytest.mark.parametrize(
    "duration, expected",
    [
        (0.5, [0.25]),
        (10.0, [0.5 + i for i in range(10)]),
        (300.0, [12.5 + 25 * i for i in range(12)]),
    ],
)
def test_sample_times_at_1fps_cap_12(duration, expected):
    assert sample_times(duration, 1.0, 12) == pytest.approx(expected)


def test_sampling_edges():
    assert sample_times(0.0) == [0.0] and sample_times(float("nan")) == [0.0]
    assert len(sample_times(10.0, 2.0, 100)) == 20 and len(sample_times(1.99, 1.0, 12)) == 1
    assert frame_indices([0.25, 9.99, 50.0], 24.0, 240) == [6, 239, 239]


def test_reduced_size_keeps_aspect_and_never_upscales():
    assert reduced_size(640, 360, 224) == (398, 224)
    assert reduced_size(360, 640, 224) == (224, 398)
    assert reduced_size(160, 96, 224) == (160, 96)


def test_blank_detection():
    black = np.zeros((90, 160, 3), np.uint8)
    noisy_black = black + np.random.default_rng(0).integers(0, 3, black.shape, dtype=np.uint8)
    grey_card = np.full((90, 160, 3), 128, np.uint8)
    content = black.copy()
    content[30:60, 40:120] = 255
    assert is_blank(black) and is_blank(noisy_black) and is_blank(grey_card) and not is_blank(content)


def test_pooling_arithmetic_and_blank_exclusion():
    a, b, c = np.eye(4, dtype=np.float32)[:3]
    np.testing.assert_allclose(pool(np.stack([a, b])), (a + b) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(pool(np.stack([a]), text=b, text_weight=1.0), (a + b) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(pool_frames(np.stack([c, a, b]), [True, False, False]), (a + b) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(pool_frames(np.stack([a, b]), [True, True]), (a + b) / np.sqrt(2), atol=1e-6)


@pytest.mark.parametrize("codec, ext", [("libx264", "mp4"), ("libvpx-vp9", "webm")])
def test_decode_samples_at_reduced_size(tmp_path, codec, ext):
    path = write_video(tmp_path / f"v.{ext}", codec, w=640, h=360, secs=4, fps=12, blank_until_s=1.0)
    f = decode_video(str(path), VideoParams(target_side=112))
    assert f.frames.shape == (4, 112, 200, 3) and (f.width, f.height) == (640, 360)
    assert f.times == pytest.approx([0.5, 1.5, 2.5, 3.5], abs=0.1) and f.duration_s == pytest.approx(4.0, abs=0.1)
    assert [is_blank(x) for x in f.frames] == [True, False, False, False]


def test_pool_timeout_and_recovery(tmp_path):
    path = write_video(tmp_path / "v.mp4", secs=2)
    with DecodePool(1) as pool_:
        with pytest.raises(InputError) as e:
            pool_.decode(str(path), VideoParams(timeout_s=0.001))
        assert e.value.error == "timeout"
        assert pool_.decode(str(path), VideoParams()).frames.shape[0] == 2  # a fresh worker took over


@pytest.mark.parametrize("secs, n, first, last", [(0.5, 1, 0.25, 0.25), (10, 10, 0.5, 9.5), (300, 12, 12.5, 287.5)])
def test_real_clips_sample_counts_and_times(tmp_path, secs, n, first, last):
    path = write_video(tmp_path / "v.mp4", w=64, h=64, secs=secs, fps=4, gop=12)
    f = decode_video(str(path), VideoParams(max_fps=1.0, max_frames=12))
    assert f.frames.shape[0] == n == len(f.times)
    assert f.times[0] == pytest.approx(first, abs=0.25) and f.times[-1] == pytest.approx(last, abs=0.25)
    assert f.duration_s == pytest.approx(secs, abs=0.3)


def test_narrow_videos_fall_back_to_pyav(tmp_path):
    """decord 3.4 cannot copy frames narrower than 64 px; PyAV samples the same frames instead."""
    path = write_video(tmp_path / "v.mp4", w=32, h=32, secs=4, fps=4)
    f = decode_video(str(path), VideoParams())
    assert f.frames.shape == (4, 32, 32, 3) and f.times == pytest.approx([0.5, 1.5, 2.5, 3.5])
