"""The embed stage: read Items -> pin rows (``PinRow``) and segment rows, pooled by each kind, given an
embedder (``embed_items``). Still JPEGs the read stage left encoded are first decoded in one batch on
the model's device (``prepare_items``; a file the batch decoder refuses takes the CPU path alone). An
input the model fails on becomes ledger rows, never a failed batch.

What it hands on (``Embedded``) is plain data (dicts of numbers, strings and numpy arrays), so a
runner may move it between processes or machines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pinembed.embedders.base import Embedder
from pinembed.embedders.device_preprocess import Encoded
from pinembed.store.rows import now
from pinembed.store.schema import PinRow

from . import kinds
from .image_decode import decode_image
from .ledger import failure_row
from .options import IngestOptions
from .read import Item, preprocess_image
from .read_stage import failure_rows


@dataclass
class Landed:
    """What the driver needs to know of one pin that the embed stage produced."""

    pin_id: str
    kind: str
    uris: list[str]  # ledger uris it answers for (cleared when it lands clean)
    warned: bool
    images: int


@dataclass
class Prepared:
    """Items whose encoded JPEGs are decoded on the model's device (``prepare_items``)."""

    items: list[Item]
    failures: list[dict[str, Any]] = field(default_factory=list)  # ledger rows of inputs no decoder read
    failed: int = 0
    cpu_fallbacks: int = 0  # files the batch decoder refused that the CPU path then read


def prepare_items(items: list[Item], embedder: Embedder) -> Prepared:
    """Decode the encoded JPEGs of ``items`` in one batch on the embedder's device and preprocess them
    there; a file the batch decoder refuses is decoded on the CPU (PIL) path alone, and one that no
    decoder reads becomes its input's ledger row. Items without encoded parts pass through untouched."""
    slots = [(it, j) for it in items for j, p in enumerate(it.pixels) if isinstance(p, Encoded)]
    out = Prepared(items)
    if not slots:
        return out
    device = embedder.device_preprocessor()
    if device is None:  # an embedder without a device transform: every file takes the CPU path
        inputs, refused = [None] * len(slots), list(range(len(slots)))
    else:
        inputs, refused = device([it.pixels[j].data for it, j in slots])
    bad: set[int] = set()
    for k in refused:
        it, j = slots[k]
        if id(it) in bad:
            continue
        try:
            inputs[k] = _cpu_path(it.pixels[j], embedder)
            out.cpu_fallbacks += 1
        except Exception as e:
            out.failures += failure_rows(it.entry, e)
            out.failed += 1
            bad.add(id(it))
    for (it, j), x in zip(slots, inputs, strict=True):
        if id(it) not in bad:
            it.pixels[j] = x
    out.items = [it for it in items if id(it) not in bad]
    return out


def _cpu_path(enc: Any, embedder: Embedder) -> Any:
    """One encoded JPEG through PIL and the model's own preprocessing (InputError for a bad file)."""
    return preprocess_image(embedder.preprocess, decode_image(enc.data, enc.max_pixels).image)


@dataclass
class Embedded:
    """The embed stage's output for one batch: rows to write, and the inputs the model failed on."""

    pins: list[PinRow] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    landed: list[Landed] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)  # ledger rows of pins that land
    failures: list[dict[str, Any]] = field(default_factory=list)  # ledger rows of inputs that failed
    failed: int = 0  # inputs that failed
    cpu_fallbacks: int = 0  # JPEGs the device decoder refused that the CPU path read
    precision: str = ""  # the precision the embedder ran at
    node: str = ""  # where it was embedded (a Ray node id; "" for this process)
    done_at: float = 0.0  # wall-clock time the batch was embedded (for steady-state rates)
    # the runner's timings of this batch, summed into the run's stage_s by the driver
    read_s: float = 0.0  # reading its items (summed over read threads or tasks)
    embed_s: float = 0.0  # the embed stage
    decode_s: float | None = None  # decoding its JPEGs on the device ahead of the model (None: not done)


def embed_items(items: list[Item] | Prepared, embedder: Embedder, opts: IngestOptions) -> Embedded:
    """The embed stage: encoded JPEGs decoded on the device (unless ``items`` are already ``Prepared``),
    forward passes of at most ``opts.batch_size`` images over the items' parts, the texts their kinds
    embed, pooling by kind; pin and segment rows."""
    prepared = items if isinstance(items, Prepared) else prepare_items(items, embedder)
    items = prepared.items
    out = Embedded(failures=list(prepared.failures), failed=prepared.failed, cpu_fallbacks=prepared.cpu_fallbacks,
                   precision=str(embedder.precision))
    vectors = _image_vectors(items, embedder, opts.batch_size or 32, out)
    ok = [it for it in items if it.entry.pin_id in vectors]
    texts = _text_vectors(ok, embedder, opts)
    stamp = now()
    for item in ok:
        kind = kinds.get(item.kind)
        vec, segs = kind.pool(item, vectors[item.entry.pin_id], texts.get(item.entry.pin_id, []), opts)
        e = item.entry
        row = PinRow(
            pin_id=e.pin_id, kind=kind.name, uri=e.uri, content_hash=item.content_hash, size=e.size if e.size >= 0 else None,
            mtime_ns=e.mtime_ns, source_sig=opts.signature(e, kind.name), source=e.source or None, title=item.title,
            description=item.description, width=item.width, height=item.height, duration_s=item.duration_s,
            fps=item.fps, n_segments=len(segs), model_id=embedder.model_id, vector=vec, embedded_at=stamp,
        )
        if e.attrs:  # a catalog's or a shard's attributes: columns of the pins table (store.attributes)
            row.update(e.attrs)  # type: ignore[typeddict-item]
        out.pins.append(row)
        out.segments.extend(segs)
        out.warnings.extend(item.warnings)
        out.landed.append(Landed(e.pin_id, kind.name, kind.uris(e), bool(item.warnings), len(item.pixels)))
    out.done_at = time.time()
    return out


def _image_vectors(items: list[Item], embedder: Embedder, bs: int, out: Embedded) -> dict[str, np.ndarray]:
    """Vectors of every part, per pin id. A pass that fails is retried pin by pin, so one bad input
    cannot sink the others; a pin that still fails becomes ledger rows in ``out``."""
    flat = [p for it in items for p in it.pixels]
    try:
        out_flat = np.concatenate([embedder.embed_pixels(flat[i : i + bs]) for i in range(0, len(flat), bs)]) \
            if flat else np.zeros((0, 1), np.float32)
    except Exception:
        vecs = {}
        for it in items:
            try:
                vecs[it.entry.pin_id] = np.concatenate(
                    [embedder.embed_pixels(it.pixels[i : i + bs]) for i in range(0, len(it.pixels), bs)])
            except Exception as e:
                out.failures += [failure_row(it.entry.uri, it.entry.pin_id, e, stage="embed"), *it.warnings]
                out.failed += 1
        return vecs
    vecs, i = {}, 0
    for it in items:
        vecs[it.entry.pin_id] = out_flat[i : i + len(it.pixels)]
        i += len(it.pixels)
    return vecs


def _text_vectors(items: list[Item], embedder: Embedder, opts: IngestOptions
                  ) -> dict[str, list[tuple[int | None, str, np.ndarray]]]:
    """Text vectors per pin, of the texts its kind embeds (idea pins' texts always: they are kept as
    segments; sidecar text of images and videos only when it is fused)."""
    jobs: list[tuple[str, int | None, str]] = []
    for it in items:
        jobs += [(it.entry.pin_id, page, text) for page, text in kinds.get(it.kind).texts(it, opts)]
    if not jobs:
        return {}
    vecs = embedder.embed_texts([j[2] for j in jobs])
    out: dict[str, list] = {}
    for (pin_id, page, text), v in zip(jobs, vecs, strict=True):
        out.setdefault(pin_id, []).append((page, text, v))
    return out
