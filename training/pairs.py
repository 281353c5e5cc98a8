"""Image-text pairs from a media folder, for training.

Images pair with their sidecar title; video frames with their video's title; idea-pin pages (and
the frames of video pages) with the page's text, else the pin's title. Items without text are left
out and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from PIL import Image

from pinembed.errors import InputError
from pinembed.ingestion.discover import discover
from pinembed.ingestion.image_decode import decode_image
from pinembed.ingestion.read import DEFAULT_MAX_BYTES
from pinembed.ingestion.sidecar import read_sidecar
from pinembed.ingestion.video_decode import VideoParams, decode_video


@dataclass
class Pairs:
    """Images (RGB PIL) and their texts, in a stable order."""

    images: list[Image.Image] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    untexted: int = 0
    failed: int = 0

    def add(self, image: Image.Image, text: str) -> None:
        self.images.append(image)
        self.texts.append(text)


def load_pairs(data_dir: str | os.PathLike[str], image_size: int = 224, max_frames: int = 4) -> Pairs:
    """Every usable (image, text) pair under ``data_dir``."""
    found = discover(data_dir)
    pairs = Pairs(failed=len(found.problems))
    video = VideoParams(max_frames=max_frames, target_side=image_size)
    for e in found.entries:
        if e.kind == "image" and e.size > DEFAULT_MAX_BYTES:
            pairs.failed += 1
            continue
        try:
            title = read_sidecar(e.sidecar)[0] if e.sidecar else None
            if e.kind == "image":
                if not title:
                    pairs.untexted += 1
                    continue
                pairs.add(decode_image(e.path.read_bytes(), draft_size=image_size).image, title)
            elif e.kind == "video":
                if not title:
                    pairs.untexted += 1
                    continue
                for f in decode_video(str(e.path), video).frames:
                    pairs.add(Image.fromarray(f), title)
            else:
                for page in e.pages:
                    text = page.text or e.title
                    if not text:
                        pairs.untexted += 1
                    elif page.kind == "image":
                        pairs.add(decode_image(page.path.read_bytes(), draft_size=image_size).image, text)
                    else:
                        for f in decode_video(str(page.path), video).frames:
                            pairs.add(Image.fromarray(f), text)
        except (InputError, OSError):
            pairs.failed += 1
    return pairs
