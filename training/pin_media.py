"""The pixels of a database's pins, for training: read once through ingest's own read stage.

The pins' media are found by walking the sources the database recorded (``pinembed sources``), so
pin ids match the ones ingest gave. Each pin becomes its preprocessed parts (an image's pixels, a
video's sampled frames, an idea pin's pages and their frames) and the group each part pools in (an idea
pin's page; one group otherwise), as ``ingestion/pooling.py`` pools the stored vectors; an idea pin also
keeps the texts ingest mixes into its vector (title and description, page texts). Blank video frames are
left out unless all are blank. Pins whose media cannot be found or read are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinembed.errors import UsageError
from pinembed.ingestion.decode_pool import DecodePool
from pinembed.ingestion.discover import discover
from pinembed.ingestion.read import Reader, ReadLimits
from pinembed.ingestion.read_stage import read_entry
from pinembed.ingestion.video_decode import VideoParams


@dataclass
class PinMedia:
    """Decoded pins: ``pixels[pin_id]`` a (parts, 3, H, W) tensor, ``groups[pin_id]`` one group index
    per part, ``titles[pin_id]`` the pin's title (or ""), ``texts[pin_id]`` the texts ingest pools into an
    idea pin's vector (ideas only)."""

    pixels: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, list[int]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    missing: int = 0  # wanted pins no recorded source holds any more
    failed: int = 0  # pins whose media failed to read


def load_pin_media(store: Any, pin_ids: Iterable[str], preprocess: Callable[[Any], Any], image_size: int,
                   max_frames: int = 4) -> PinMedia:
    """Read the media of ``pin_ids`` from the database's recorded sources."""
    import torch

    wanted = set(pin_ids)
    sources = store.sources()
    if not sources:
        raise UsageError(f"the database {store.uri!r} records no sources, so its pins' media cannot be found",
                         "train on a database that `pinembed ingest SRC` built")
    entries = []
    for root, prefix in sorted(sources.items()):
        found = discover(root, prefix or "", store.storage_options)
        entries += [e for e in found.entries if e.pin_id in wanted]
    out = PinMedia(missing=len(wanted - {e.pin_id for e in entries}))
    video = VideoParams(max_frames=max_frames, target_side=image_size)
    pool = DecodePool(1) if any(e.kind != "image" for e in entries) else None
    try:
        reader = Reader(preprocess, ReadLimits(), video, None, pool)
        for e in sorted(entries, key=lambda e: e.pin_id):
            item, _ = read_entry(reader, e)
            if item is None or not item.pixels:
                out.failed += 1
                continue
            keep = [i for i, p in enumerate(item.parts) if not p.blank] or list(range(len(item.parts)))
            pages = {}
            out.pixels[e.pin_id] = torch.stack([item.pixels[i] for i in keep])
            out.groups[e.pin_id] = [pages.setdefault(item.parts[i].page, len(pages)) for i in keep]
            out.titles[e.pin_id] = item.title or e.title or ""
            out.kinds[e.pin_id] = item.kind
            if item.kind == "idea" and item.texts:
                out.texts[e.pin_id] = [t for _, t in item.texts]
    finally:
        if pool is not None:
            pool.close()
    return out


def pooled(features: Any, groups: list[int], text: Any = None, text_weight: float = 0.0) -> Any:
    """One pin's vector from its parts' features, as ``ingestion.pooling`` pools the stored vectors:
    normalise(mean over groups of the normalised group means of the normalised part features
    + ``text_weight`` x ``text``, the pin's normalised mean text vector, if any)."""
    import torch

    normalize = torch.nn.functional.normalize
    f = normalize(features, dim=-1)
    g = torch.tensor(groups)
    n = int(g.max()) + 1
    if n == 1:
        v = normalize(f.mean(0), dim=-1)
    else:
        sums = torch.zeros(n, f.shape[1], dtype=f.dtype).index_add(0, g, f)
        means = sums / torch.bincount(g, minlength=n)[:, None].to(f.dtype)
        v = normalize(means, dim=-1).mean(0)
    if text is not None and text_weight:
        v = v + text_weight * text
    return normalize(v, dim=-1)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def load_images(folder: str, preprocess: Callable[[Any], Any], limit: int = 5000) -> tuple[Any, int, int]:
    """(a (n, 3, H, W) tensor of the first ``limit`` images under ``folder`` by path, the number of
    files that could not be read, the number of images past ``limit`` left out). For the anchor set
    of ``train --pairs --anchor-data``."""
    import torch
    from PIL import Image, UnidentifiedImageError

    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--anchor-data {folder!r} is not a folder", "give a folder of images (PNG, JPEG, WebP)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    pixels, bad = [], 0
    for f in files[:limit]:
        try:
            with Image.open(f) as im:
                pixels.append(preprocess(im.convert("RGB")))
        except (OSError, UnidentifiedImageError, ValueError):
            bad += 1
    if not pixels:
        raise UsageError(f"--anchor-data {folder!r} holds no readable images", "give a folder of PNG/JPEG/WebP images")
    return torch.stack(pixels), bad, max(0, len(files) - limit)
