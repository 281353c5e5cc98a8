"""Idea pins: a folder holding ``pin.json`` (see ``idea.py`` for the manifest). Pages are images or
video clips; the pin vector pools the page vectors with the title, description and page texts; pages
and texts are kept as segments."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from pinembed.errors import InputError

from ..idea import MANIFEST, MAX_MANIFEST_BYTES, MAX_PAGES
from ..ledger import failure_row, problem_rows
from ..object_media import join, read_file
from ..pooling import pool, pool_frames
from ..read import Item, Part, decoder_warning
from ..sidecar import read_small
from .base import Kind, file_digest, segment, text_vector

if TYPE_CHECKING:
    from ..entry import Entry
    from ..options import IngestOptions
    from ..read import Reader
    from ..video_decode import VideoParams


class IdeaKind(Kind):
    name = "idea"
    folder_marker = MANIFEST
    paged = True

    def cost(self, entry: Entry, video: VideoParams) -> int:
        return sum(video.max_frames if p.kind == "video" else 1 for p in entry.pages) or 1

    def uses_decode_pool(self, entry: Entry) -> bool:
        return any(p.kind == "video" for p in entry.pages)

    def settings(self, entry: Entry, opts: IngestOptions) -> list[str]:
        v = opts.video
        parts = [f"fps={v.max_fps:g},mf={v.max_frames}"] if self.uses_decode_pool(entry) else []
        return [*parts, f"itw={opts.idea_text_weight:g}"]

    def read(self, reader: Reader, entry: Entry) -> Item:
        h = hashlib.blake2b(digest_size=16)
        h.update(_manifest(entry))
        item = Item(entry, [], [], "", title=entry.title, description=entry.description)
        item.warnings.extend(problem_rows(entry.notes))  # pages the manifest check refused
        for page in entry.pages:
            uri = str(page.path)
            try:
                if page.kind == "image":
                    pixels, data, pic = reader.image_pixels(page.path, page.size, entry.media)
                    item.warnings += decoder_warning(uri, entry.pin_id, pic)
                    item.pixels.append(pixels)
                    item.parts.append(Part(uri, page.index))
                    h.update(data)
                else:
                    frames, pixels, parts, page_digest = reader.frames(page.path, page.size, uri, page.index,
                                                                       entry.media)
                    item.warnings += decoder_warning(uri, entry.pin_id, frames)
                    item.pixels.extend(pixels)
                    item.parts.extend(parts)
                    h.update(page_digest.encode())
            except InputError as e:
                item.warnings.append(failure_row(uri, entry.pin_id, e))
                continue
            if page.text:
                item.texts.append((page.index, page.text))
        if not item.pixels:
            err = InputError("idea pin has no usable pages (see the page rows in the ledger)",
                             error="no_usable_pages", stage="read")
            err.warnings = item.warnings  # type: ignore[attr-defined]  # the pages' own reasons go to the ledger too
            raise err
        head = ". ".join(filter(None, (entry.title, entry.description)))
        if head:
            item.texts.insert(0, (None, head))
        item.content_hash = h.hexdigest()
        return item

    def texts(self, item: Item, opts: IngestOptions) -> list[tuple[int | None, str]]:
        return list(item.texts)  # always embedded: they are kept as segments

    def pool(self, item: Item, vectors: np.ndarray, texts: Any, opts: IngestOptions):
        parts, pin_id = item.parts, item.entry.pin_id
        blank = [p.blank for p in parts]
        pages: dict[int, list[int]] = {}
        for i, p in enumerate(parts):
            pages.setdefault(p.page, []).append(i)
        page_vecs, segs = [], []
        for seq, (page, idx) in enumerate(sorted(pages.items())):
            v = pool_frames(vectors[idx], [blank[i] for i in idx])
            page_vecs.append(v)
            segs.append(segment(pin_id, seq, "page", parts[idx[0]].uri, v, page=page))
        for page, _text, v in texts:
            segs.append(segment(pin_id, len(segs), "text", None, v, page=page))
        return pool(np.stack(page_vecs), text_vector(texts), opts.idea_text_weight), segs

    def uris(self, entry: Entry) -> list[str]:
        if entry.row:  # a catalog row: its pages are its media
            return [entry.uri, *(str(p.path) for p in entry.pages)]
        manifest = str(join(entry.path, MANIFEST))
        return [entry.uri, manifest, *(f"{manifest}#page={i}" for i in range(MAX_PAGES)),
                *(str(p.path) for p in entry.pages)]

    def content_hash(self, entry: Entry) -> str | None:
        try:
            h = hashlib.blake2b(digest_size=16)
            h.update(_manifest(entry))
            for page in entry.pages:
                h.update(read_file(page.path, entry.media, page.size + 1) if page.kind == "image"
                         else file_digest(page.path, entry.media).encode())
            return h.hexdigest()
        except (OSError, InputError):
            return None


def _manifest(entry: Entry) -> bytes:
    """What an idea pin's content hash starts from: its pin.json, or a catalog row's texts (it has none)."""
    if entry.row:
        return json.dumps([entry.title, entry.description, [p.text for p in entry.pages]]).encode()
    return read_small(join(entry.path, MANIFEST), MAX_MANIFEST_BYTES, "manifest", "pin.json", entry.media)


KIND = IdeaKind()
