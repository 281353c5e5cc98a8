"""What every media kind provides (``Kind``), with the defaults most kinds share."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from pinembed.embedders.base import l2_normalise

from ..object_media import file_digest as digest_of
from ..pooling import pool, pool_frames

if TYPE_CHECKING:
    from ..entry import Entry
    from ..options import IngestOptions
    from ..read import Item, Reader
    from ..video_decode import VideoParams

Texts = list[tuple[int | None, str, np.ndarray]]  # (page or None, text, vector)


class Kind:
    """One media kind. Subclasses set ``name`` and ``extensions`` and implement ``read`` and ``pool``."""

    name: ClassVar[str]
    extensions: ClassVar[frozenset[str]] = frozenset()  # lower case, with the dot
    folder_marker: ClassVar[str | None] = None  # a folder holding this file is one pin of this kind
    timed: ClassVar[bool] = False  # segments are frames with times: results carry best_t_s
    paged: ClassVar[bool] = False  # segments are pages: results carry best_page

    def cost(self, entry: Entry, video: VideoParams) -> int:
        """Images ``entry`` can decode to: its share of the read-ahead window."""
        return 1

    def uses_decode_pool(self, entry: Entry) -> bool:
        """Whether reading ``entry`` needs the video decode processes."""
        return False

    def settings(self, entry: Entry, opts: IngestOptions) -> list[str]:
        """The embedding settings the pin vector depends on, as signature parts (changing one re-embeds
        the pin): the sidecar text weight when its text is fused."""
        has_text = entry.sidecar is not None or bool(entry.title or entry.description)  # (a catalog row's)
        return [f"tw={opts.text_weight:g}"] if has_text and opts.text_weight else []

    def read(self, reader: Reader, entry: Entry) -> Item:
        """Decode ``entry`` into model-ready pixels (InputError for unusable input)."""
        raise NotImplementedError

    def texts(self, item: Item, opts: IngestOptions) -> list[tuple[int | None, str]]:
        """Texts to embed with the pin: the sidecar title and description when they are fused."""
        if opts.text_weight and (item.title or item.description):
            return [(None, ". ".join(filter(None, (item.title, item.description))))]
        return []

    def pool(self, item: Item, vectors: np.ndarray, texts: Texts, opts: IngestOptions
             ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The pin vector and segment rows from the parts' vectors (and text vectors)."""
        raise NotImplementedError

    def uris(self, entry: Entry) -> list[str]:
        """Every ledger uri that a landed pin answers for: its media and its sidecar."""
        return [entry.uri] + ([str(entry.sidecar)] if entry.sidecar else [])

    def content_hash(self, entry: Entry) -> str | None:
        """The content hash a read would record, computed without decoding (for finding moves and
        copies); None when the file cannot be read."""
        try:
            return file_digest(entry.path, entry.media)
        except OSError:
            return None

    def __repr__(self) -> str:
        return f"<kind {self.name}>"


class FramesKind(Kind):
    """A kind whose pin is sampled frames (video, motion): the sampling settings are part of its
    signature, the pin vector pools the non-blank frames, and every frame is a segment with its time."""

    timed = True

    def cost(self, entry: Entry, video: VideoParams) -> int:
        return video.max_frames

    def settings(self, entry: Entry, opts: IngestOptions) -> list[str]:
        v = opts.video
        return [f"fps={v.max_fps:g},mf={v.max_frames}", *super().settings(entry, opts)]

    def pool(self, item: Item, vectors: np.ndarray, texts: Texts, opts: IngestOptions
             ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        blank = [p.blank for p in item.parts]
        return pool(pool_frames(vectors, blank), text_vector(texts), opts.text_weight), frame_segments(item, vectors)


def text_vector(texts: Texts) -> np.ndarray | None:
    """The normalised mean of text vectors, or None."""
    return l2_normalise(np.mean([v for _, _, v in texts], axis=0)[None])[0] if texts else None


def segment(pin_id: str, seq: int, kind: str, uri: str | None, vector: np.ndarray, *, t_s: float | None = None,
            page: int | None = None, weight: float = 1.0) -> dict[str, Any]:
    """One segment row."""
    return {"pin_id": pin_id, "seq": seq, "kind": kind, "t_s": t_s, "uri": uri, "page": page,
            "weight": weight, "vector": vector}


def frame_segments(item: Item, vectors: np.ndarray) -> list[dict[str, Any]]:
    """Frame segment rows of a video or motion pin (blank frames weigh 0 in the pin vector)."""
    return [segment(item.entry.pin_id, i, "frame", p.uri, v, t_s=p.t_s, weight=0.0 if p.blank else 1.0)
            for i, (p, v) in enumerate(zip(item.parts, vectors, strict=True))]


def digest(data: bytes) -> str:
    """The content hash of bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_digest(path: Path | str, media: Any = None) -> str:
    """The content hash of a file (or of an object, given its MediaStore), read in chunks (the same
    as ``digest`` of its bytes)."""
    return digest_of(path, media)
