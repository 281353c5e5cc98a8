"""Webdataset tar shards as a source: every ``.tar`` file a walk finds (in a folder or under an
object-storage prefix) is a shard whose samples are pins, read from the tar without extracting it
(img2dataset's output: ``000123.jpg`` + ``000123.json`` + ``000123.txt`` per sample).

Samples, by webdataset's rule: a member ``dir/000123.jpg`` has key ``dir/000123`` and extension
``jpg`` (the key is the path up to the first dot of the basename: ``a.b.jpg`` has key ``a`` and
extension ``b.jpg``), and the members of one sample are consecutive in the tar. A key met again after
other samples is a ``duplicate_id`` problem: those later members are not read (never merged).

One sample, one pin:

- its media: the member whose extension (its last part: ``left.jpg`` is a jpg) a kind reads; a second
  one is named as a skip (``extra_media``; a plain ``jpg`` is preferred to a ``left.jpg``, then tar
  order), none at all is a problem (``no_media``);
- its pin id: the JSON's ``id_field`` (default ``pin_id``; checked by ``walk_rules.checked_id``, a bad
  one is a ``bad_id`` problem), else its key; under the source's id prefix;
- its title and description: the JSON's ``title`` and ``description`` (``caption`` as the title when
  there is no title), else the ``.txt`` (first line the title, the rest the description);
- its attributes: the JSON's other fields (``sample_fields.py``: types, skips, conflicts);
- ``file``: ``shard#member`` (what users see, and the ledger keys by); size and mtime: the member's;
  ``sidecar_sig``: a digest of its JSON and TXT bytes (an edited caption is a change, a shard
  rewritten with the same samples is not); ``media``: a ``shard_media.ShardMember`` (range reads).

Nothing is silent: members of other extensions are skips (``not_media``), hidden ones (``._0.jpg``)
too, a second ``.json`` or ``.txt`` of a sample is a skip (``duplicate_member``); hostile names
(absolute, ``..``, control characters, not UTF-8) are problems (``bad_name``), and so are members
that are not plain files (links, sparse files: ``not_a_file``). A truncated or corrupt shard keeps the
samples read before the damage and adds a problem for the shard (``unreadable_shard``, saying where
it broke); the sample being read there is left out.

A local shard is walked by its headers (``tarfile`` mode ``r:`` seeks past every body; only JSON and
TXT bodies are read). A shard on object storage is read by one streaming GET (mode ``r|``). Cost:
discovery streams every byte of every shard once, media bodies included (read and dropped, never
held), so each walk of a prefix downloads its shards whole, also when nothing changed.
TODO(shards): record each shard's ETag with its pins (or in the sources table) and, when a listed
shard's ETag is unchanged since the last run, take its entries from the store instead of streaming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any

from pinembed.errors import InputError, PinembedError

from . import kinds
from .entry import Discovery, Entry, Problem, Skip
from .object_media import MediaStore
from .sample_fields import ShardFields
from .shard_media import ShardMember
from .sidecar import MAX_DESCRIPTION_CHARS, MAX_SIDECAR_BYTES, MAX_TITLE_CHARS, clean_text
from .walk_rules import checked_id, hidden_skip, is_utf8, pin_id

TEXTS = ("json", "txt")  # a sample's text members: read at discovery
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_DAMAGE = "_pinembed_damage"  # what a _Header leaves on its TarFile when a walk stops at a damaged header


def discover_shard(uri: str, id_prefix: str = "", store: MediaStore | None = None, *, shard_id: str = "",
                   etag: str = "", id_field: str = "pin_id") -> Discovery:
    """The samples of the shard at ``uri`` (a local path; an object URI when ``store``, the source's
    MediaStore, is given, with ``etag`` its listed ETag) as entries, problems, skips and the types of
    their attributes. ``shard_id`` is the pin id a problem of the whole shard is recorded under. Pin
    ids are not yet deduplicated (the walk does that across shards: ``Discovery.keep_unique_ids``)."""
    walk = _Walk(uri, id_prefix, store, shard_id, id_field)
    if store is None:
        _walk_local(walk)
    else:
        walk.version = etag
        _walk_stream(walk, store)
    walk.found.attributes = walk.fields.types
    walk.found.skips += walk.fields.skips
    return walk.found


def _walk_local(walk: _Walk) -> None:
    try:
        with open(walk.uri, "rb") as f:
            s = os.fstat(f.fileno())
            walk.version = f"{s.st_size}:{s.st_mtime_ns}"
            with tarfile.open(fileobj=f, mode="r:", tarinfo=_Header) as tf:
                walk.run(tf)
    except (tarfile.TarError, OSError) as e:  # the first header (not a tar), or the file itself
        walk.broken(_why(e), 0)


def _walk_stream(walk: _Walk, store: MediaStore) -> None:
    body = _ChunkFile(store.stream(walk.uri))
    try:
        with tarfile.open(fileobj=body, mode="r|", tarinfo=_Header) as tf:
            walk.run(tf)
    except (tarfile.TarError, OSError, PinembedError) as e:
        walk.broken(_why(e), 0)
    finally:
        body.close()


@dataclass
class _Sample:
    key: str
    duplicate: bool = False
    media: list[tuple[bool, int, tarfile.TarInfo, str]] = field(default_factory=list)  # (compound ext, order, member, kind)
    texts: dict[str, bytes] = field(default_factory=dict)  # "json"/"txt" -> bytes
    exts: list[str] = field(default_factory=list)  # every member's extension, in tar order
    problem: Problem | None = None


class _Walk:
    """One shard's walk: members in tar order, grouped into samples, each sample finished into an
    entry or a problem when the next key begins."""

    def __init__(self, uri: str, prefix: str, store: MediaStore | None, shard_id: str, id_field: str) -> None:
        self.uri, self.prefix, self.store, self.shard_id, self.id_field = uri, prefix, store, shard_id, id_field
        self.version = ""
        self.found = Discovery([], [])
        self.fields = ShardFields(uri)
        self.seen: set[str] = set()
        self.sample: _Sample | None = None
        self.kept = 0
        self.last = ""  # the last member's name (where a damaged shard broke)

    def run(self, tf: tarfile.TarFile) -> None:
        """Walk ``tf``'s members to the end, or to the damage."""
        while True:
            try:
                m = tf.next()
                if m is None:
                    break
                tf.members.clear()  # tarfile keeps every header otherwise
                self.member(tf, m)
                self.last = m.name
            except (tarfile.TarError, OSError, PinembedError) as e:
                self.broken(_why(e), tf.offset)
                return
        damage = getattr(tf, _DAMAGE, None)
        if damage is not None:
            self.broken(*damage)
        else:
            self.finish()

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        """Add one member to its sample (a new key finishes the sample before it)."""
        name = m.name
        if m.isdir():
            return
        bad = bad_name(name)
        if bad is not None:
            shown = _shown(name)
            self.problem(f"{self.uri}#{shown}", "", "bad_name", f"member name {shown[:200]!r} is refused: {bad}")
            return
        where = f"{self.uri}#{name}"
        if not m.isfile() or m.issparse():
            what = "a sparse file" if m.isfile() else "a link" if m.issym() or m.islnk() else "not a plain file"
            self.problem(where, "", "not_a_file", f"member {name!r} is {what}: only plain files are read")
            return
        folder, _, base = name.rpartition("/")
        if base.startswith("."):
            self.found.skips.append(hidden_skip(where))
            return
        stem, dot, ext = base.partition(".")
        if not ext:
            self.found.skips.append(Skip(where, "not_media", "no extension: not part of a webdataset sample"))
            return
        key = f"{folder}/{stem}" if folder else stem
        while key.startswith("./"):
            key = key[2:]
        if self.sample is None or self.sample.key != key:
            self.finish()
            self.sample = _Sample(key, duplicate=key in self.seen)
            self.seen.add(key)
        s = self.sample
        if s.duplicate:
            return
        ext = ext.lower()
        s.exts.append(ext)
        if ext in TEXTS:
            if ext in s.texts:
                self.found.skips.append(Skip(where, "duplicate_member", f"sample {key!r} has a .{ext} already"))
            elif m.size > MAX_SIDECAR_BYTES:
                s.texts[ext] = b""
                s.problem = Problem(where, pin_id(key, self.prefix), "too_large",
                                    f"the sample's .{ext} is {m.size:,} bytes; at most {MAX_SIDECAR_BYTES:,}")
            else:
                f = tf.extractfile(m)
                s.texts[ext] = f.read() if f is not None else b""
            return
        last = ext.rsplit(".", 1)[-1]
        kind = kinds.for_extension("." + last)
        if kind is None:
            self.found.skips.append(Skip(where, "not_media", f"not a media file (.{ext}): no kind reads it"))
            return
        s.media.append((last != ext, len(s.media), m, kind.name))

    def finish(self) -> None:
        """The sample being read becomes an entry, or a problem."""
        s, self.sample = self.sample, None
        if s is None:
            return
        where, pid = f"{self.uri}#{s.key}", pin_id(s.key, self.prefix)
        if s.duplicate:
            self.problem(where, pid, "duplicate_id",
                         f"sample key {s.key!r} appears again in {self.uri} after other samples: the members of "
                         "a sample must be consecutive (webdataset); these later members are not read")
            return
        if s.problem is not None:
            self.found.problems.append(s.problem)
            return
        if not s.media:
            has = ", ".join(f".{e}" for e in s.exts)
            self.problem(where, pid, "no_media", f"sample {s.key!r} of {self.uri} has no media member (it has {has})")
            return
        s.media.sort(key=lambda x: x[:2])
        (_, _, m, kind), *extra = s.media
        for _c, _o, other, _k in extra:
            self.found.skips.append(Skip(f"{self.uri}#{other.name}", "extra_media",
                                         f"sample {s.key!r} has its media in {m.name!r}; a second one is not read"))
        doc: dict[str, Any] = {}
        if "json" in s.texts:
            try:
                doc = json.loads(s.texts["json"].decode("utf-8", "replace").lstrip("\ufeff"))
            except json.JSONDecodeError as e:
                self.problem(where, pid, "bad_json", f"{self.uri}: sample {s.key!r}: its .json is not valid JSON: {e}")
                return
            if not isinstance(doc, dict):
                self.problem(where, pid, "bad_json", f"{self.uri}: sample {s.key!r}: its .json is not an object")
                return
        if doc.get(self.id_field) is not None:
            try:
                pid = pin_id(checked_id(doc[self.id_field], f"the {self.id_field!r} field"), self.prefix)
            except InputError as e:
                self.problem(where, pid, "bad_id", f"{self.uri}: sample {s.key!r}: {e.message}")
                return
        file = f"{self.uri}#{m.name}"
        title, description, used, notes = texts(doc, s.texts.get("txt"), file, pid)
        attrs, conflicts = self.fields.attrs(doc, used | {self.id_field}, file, pid)
        self.found.entries.append(Entry(
            pid, kind, file, m.size, int(m.mtime * 1_000_000_000), None, texts_sig(s.texts), title, description,
            notes=(*notes, *conflicts), media=ShardMember(self.uri, m.offset_data, m.size, self.version, self.store),
            attrs=attrs or None))
        self.kept += 1

    def broken(self, why: str, at: int) -> None:
        """The shard is damaged at byte ``at``: the sample being read is left out, a problem says where."""
        s, self.sample = self.sample, None
        lost = f"; sample {s.key!r}, being read there, is left out" if s is not None and not s.duplicate else ""
        after = f" (the last member read: {_shown(self.last)!r})" if self.last else ""
        self.problem(self.uri, self.shard_id, "unreadable_shard",
                     f"the shard cannot be read past byte {at:,}{after}: {why} (cut short or corrupt); "
                     f"kept the {self.kept} sample{'' if self.kept == 1 else 's'} read before it{lost}")

    def problem(self, path: str, pid: str, error: str, message: str) -> None:
        self.found.problems.append(Problem(path, pid, error, message, "discover"))


def texts(doc: dict[str, Any], txt: bytes | None, uri: str, pin: str
          ) -> tuple[str | None, str | None, set[str], list[Problem]]:
    """(title, description, the JSON fields they took, warnings) of a sample: the JSON's ``title`` and
    ``description`` (``caption`` as the title when there is no title), else its ``.txt``'s first line
    and the rest; cleaned and capped as sidecar text is."""
    used, notes = {"title", "description"}, []
    for name in ("title", "description"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            notes.append(Problem(uri, pin, "bad_json", f"the sample's JSON {name!r} is not a string; left out"))
    title = doc.get("title") if isinstance(doc.get("title"), str) else None
    description = doc.get("description") if isinstance(doc.get("description"), str) else None
    if title is None and isinstance(doc.get("caption"), str):
        title = doc["caption"]
        used.add("caption")
    if title is None and description is None and txt:
        title, _, description = txt.decode("utf-8", "replace").lstrip("\ufeff").strip().partition("\n")
    return clean_text(title, MAX_TITLE_CHARS), clean_text(description, MAX_DESCRIPTION_CHARS), used, notes


def texts_sig(bodies: dict[str, bytes]) -> str:
    """The signature of a sample's JSON and TXT bytes ("" when it has neither)."""
    if not bodies:
        return ""
    h = hashlib.blake2b(digest_size=8)
    for ext in TEXTS:
        if ext in bodies:
            h.update(f"{ext}:{len(bodies[ext])}:".encode())
            h.update(bodies[ext])
    return f"texts={h.hexdigest()}"


def bad_name(name: str) -> str | None:
    """Why a member name is refused (absolute, a ``..`` part, a control character, not UTF-8), or None."""
    if not is_utf8(name):
        return "not valid UTF-8"
    if name.startswith("/") or (name[:1].isalpha() and name[1:2] == ":" and name[2:3] in ("", "/", "\\")):
        return "an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "it climbs out with '..'"
    if _CONTROL.search(name):
        return "it holds a control character"
    return None


def _shown(name: str) -> str:
    """A member name as it can be shown and stored (undecodable bytes replaced, control characters escaped)."""
    safe = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub(lambda c: repr(c.group())[1:-1], safe)


class _Header(tarfile.TarInfo):
    """A tar header that leaves on its TarFile why a walk stopped: after the first member, tarfile
    ends a walk silently at a damaged header (a cut, a bad checksum), as it does at the archive's end."""

    @classmethod
    def fromtarfile(cls, tf: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tf)
        except tarfile.EOFHeaderError:  # the end-of-archive blocks
            raise
        except tarfile.HeaderError as e:
            setattr(tf, _DAMAGE, (_why(e), tf.offset))
            raise


def _why(e: BaseException) -> str:
    if isinstance(e, tarfile.EmptyHeaderError):
        return "the shard ends there without tar's end-of-archive blocks"
    if isinstance(e, tarfile.TruncatedHeaderError):
        return "the shard ends inside a tar header"
    if isinstance(e, tarfile.InvalidHeaderError):
        return f"not a valid tar header ({e})"
    if isinstance(e, PinembedError):
        return e.message
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e) or type(e).__name__
    return "not a tar file" if text in ("invalid header", "bad checksum") else text


class _ChunkFile:
    """A file-like reader of an iterator of byte chunks (an object's streaming GET), for ``tarfile``'s
    stream mode; nothing is held beyond the chunk being read."""

    def __init__(self, chunks: Any) -> None:
        self._it = chunks
        self._buf = memoryview(b"")
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._buf):
            chunk = next(self._it, None)
            if not chunk:
                return b""
            self._buf, self._pos = memoryview(chunk), 0
        end = len(self._buf) if n < 0 else min(len(self._buf), self._pos + n)
        out = bytes(self._buf[self._pos:end])
        self._pos = end
        return out

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
