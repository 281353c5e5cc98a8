"""The batch JPEG path (decode + the model's transform on its device), run here on CPU tensors: the same
vectors as the PIL path, images grouped by size in order, a refused or bad file never fails its batch."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pinembed
from pinembed.embedders import get_embedder
from pinembed.embedders.auto_precision import probe_images
from pinembed.embedders.device_preprocess import DevicePreprocess, for_open_clip
from pinembed.ingestion.embed_stage import embed_items, prepare_items
from pinembed.ingestion.entry import Entry
from pinembed.ingestion.image_decode import decode_image
from pinembed.ingestion.options import IngestOptions
from pinembed.ingestion.read import Reader, ReadLimits
from pinembed.ingestion.video_decode import VideoParams

from helpers import truncated_jpeg

BACKENDS = ["torchcodec", "torchvision"]


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _photos() -> list[bytes]:
    """Photo-like JPEGs in three sizes (two of each), a greyscale one and one turned by EXIF."""
    ims = probe_images(8, seed=3)
    sizes = [(320, 240), (240, 320), (300, 200)]
    out = [_jpeg(im.resize(sizes[i % 3])) for i, im in enumerate(ims[:6])]
    out.append(_jpeg(ims[6].resize((200, 150)).convert("L")))
    turned = ims[7].resize((256, 160))
    exif = turned.getexif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    out.append(_jpeg(turned, exif=exif.tobytes()))
    return out


@pytest.fixture(scope="module")
def nano32():
    return get_embedder("nano", "cpu", "fp32")


@pytest.mark.parametrize("backend", BACKENDS)
def test_device_transform_gives_the_models_own_vectors(nano32, backend):
    blobs = _photos()
    dev = DevicePreprocess(**{**for_open_clip(nano32.preprocess_cfg, "cpu", None).__dict__, "backend": backend})
    inputs, failed = dev(blobs)
    assert failed == [] and all(x.shape == (3, nano32.image_size, nano32.image_size) for x in inputs)
    reference = [nano32.preprocess(decode_image(b).image) for b in blobs]  # PIL, full decode, EXIF applied
    assert max(float((a - b).abs().max()) for a, b in zip(inputs, reference, strict=True)) < 0.15
    cos = np.sum(nano32.embed_pixels(inputs) * nano32.embed_pixels(reference), axis=1)
    assert cos.min() >= 0.999


def test_images_are_resized_in_groups_of_one_size_and_keep_their_order(nano32):
    dev = for_open_clip(nano32.preprocess_cfg, "cpu", None)
    decoded, _ = dev.decode(_photos())
    together = dev.transform(decoded)
    alone = [dev.transform([im])[0] for im in decoded]
    assert len({tuple(im.shape) for im in decoded}) >= 4
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(together, alone, strict=True))


def test_a_bad_file_in_a_batch_is_named_and_the_rest_decode(nano32, tmp_path):
    blobs = _photos()[:3]
    bad = truncated_jpeg(tmp_path / "cut.jpg").read_bytes()
    inputs, failed = for_open_clip(nano32.preprocess_cfg, "cpu", None)([blobs[0], bad, *blobs[1:]])
    assert failed == [1] and inputs[1] is None and all(inputs[i] is not None for i in (0, 2, 3))


def test_transforms_it_cannot_reproduce_take_the_cpu_path():
    cfg = {"size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "resize_mode": "shortest"}
    assert for_open_clip(cfg, "cpu", None) is not None
    assert for_open_clip({**cfg, "resize_mode": "longest"}, "cpu", None) is None
    assert for_open_clip({**cfg, "size": (224, 160)}, "cpu", None) is None
    assert for_open_clip({**cfg, "interpolation": "lanczos"}, "cpu", None) is None


def _folder(root: Path) -> Path:
    src = root / "media"
    src.mkdir()
    for i, b in enumerate(_photos()):
        (src / f"p{i}.jpg").write_bytes(b)
    Image.open(io.BytesIO(_photos()[0])).convert("CMYK").save(src / "cmyk.jpg")  # the PIL path
    Image.open(io.BytesIO(_photos()[1])).save(src / "lossless.png")  # not a JPEG: the PIL path
    truncated_jpeg(src / "cut.jpg")
    return src


def test_ingest_on_the_device_path_gives_the_pil_paths_pins_ledger_and_vectors(tmp_path):
    src = _folder(tmp_path)
    runs = {}
    for name, opts in (("device", IngestOptions(image_decode="device", fast_jpeg=False, batch_size=3)),  # 4 batches in flight
                       ("pil", IngestOptions(image_decode="pil", fast_jpeg=False))):
        idx = pinembed.open_index(str(tmp_path / f"{name}.lance"), model="nano", precision="fp32")
        s = idx.ingest(src, opts)
        rows = {r["pin_id"]: r for r in idx.to_arrow().to_pylist()}
        runs[name] = (s, rows)
    (sd, dev), (sp, pil) = runs["device"], runs["pil"]
    assert sd.added == sp.added == 10 and sd.failed == sp.failed == 1
    assert [(f["uri"].rsplit("/", 1)[1], f["stage"], f["error"]) for f in sd.failures] == \
        [(f["uri"].rsplit("/", 1)[1], f["stage"], f["error"]) for f in sp.failures] == [("cut.jpg", "read", "truncated")]
    assert "decode" in sd.stage_s and sd.cpu_fallbacks == 0 and sd.precision == "fp32"
    assert dev.keys() == pil.keys()
    for pin_id, row in dev.items():
        assert (row["width"], row["height"]) == (pil[pin_id]["width"], pil[pin_id]["height"]), pin_id
        assert float(np.dot(row["vector"], pil[pin_id]["vector"])) >= 0.999, pin_id
    assert (dev["p7.jpg"]["width"], dev["p7.jpg"]["height"]) == (160, 256)  # upright by EXIF


def test_without_a_device_transform_every_jpeg_takes_the_cpu_path(tmp_path):
    """An embedder with no device transform (transformers' CLIP here) still embeds encoded JPEGs: each
    file goes through PIL and the model's own processor, counted as a CPU fallback."""
    from hf_models import save_tiny_clip

    hf = get_embedder(f"hf:{save_tiny_clip(tmp_path / 'hf')}", "cpu", "fp32")
    assert hf.device_preprocessor() is None
    src = _folder(tmp_path)
    reader = Reader(hf.preprocess, ReadLimits(), VideoParams(), None, device_decode=True)
    items = []
    for p in sorted(src.glob("p*.jpg"))[:3] + [src / "cut.jpg"]:
        items.append(reader(Entry(pin_id=p.name, kind="image", file=str(p), size=p.stat().st_size, mtime_ns=0)))
    prepared = prepare_items(items, hf)
    assert prepared.cpu_fallbacks == 3 and prepared.failed == 1
    assert prepared.failures[0]["pin_id"] == "cut.jpg" and prepared.failures[0]["error"] == "truncated"
    done = embed_items(prepared, hf, IngestOptions())
    assert [p["pin_id"] for p in done.pins] == ["p0.jpg", "p1.jpg", "p2.jpg"] and done.failed == 1
