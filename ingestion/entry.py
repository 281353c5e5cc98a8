"""What a walk finds: entries (things to ingest), problems (ledger rows) and skips (named, with a reason)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Entry:
    """One thing to ingest: a media file or an idea-pin folder. (A plain slotted class: a walk makes
    one per file, and a no-change refresh of 100k files is mostly this walk.)

    ``kind`` is the kind its name says (see ``kinds.for_extension``); reading may refine it (an
    animated GIF is read as a motion pin), and the refined kind is what the store records."""

    pin_id: str
    kind: str  # a name in kinds.NAMES
    file: str  # absolute path, or the object's URI (``media`` set)
    size: int
    mtime_ns: int
    sidecar: Path | str | None = None  # a URI when ``media`` is set
    sidecar_sig: str = ""  # size:mtime of the sidecar, or of every idea-pin page
    title: str | None = None  # idea pins: from the manifest
    description: str | None = None
    pages: tuple[Any, ...] = ()  # idea pins: idea.Page
    notes: tuple[Any, ...] = ()  # problems that do not stop the pin (an idea pin's unusable pages)
    etag: str = ""  # object storage: the object's ETag
    media: Any = None  # object storage: the source's object_media.MediaStore (None: a local file)
    attrs: dict[str, Any] | None = None  # a catalog's or shard's attributes (store.attributes), typed values
    source: str = ""  # the root of the source it was found in (the pin's owner)
    sig: str = ""  # a catalog row's own source signature (its version or media stat, kind and media value)
    row: str = ""  # a catalog row: "FILE#line=N" (what a message about the row names)

    @property
    def path(self) -> Path | str:
        """The media file or idea-pin folder: a Path, or the URI string for object storage."""
        return self.file if self.media is not None else Path(self.file)

    @property
    def uri(self) -> str:
        """Where the pin's media lives (an absolute path or an object URI)."""
        return self.file

    @property
    def source_sig(self) -> str:
        """What a change is judged by: size and mtime (and ETag on object storage) of the media and of
        its sidecar."""
        if self.sig:
            return self.sig
        own = f"{self.size}:{self.mtime_ns}" + (f":{self.etag}" if self.etag else "")
        return own + (f"|{self.sidecar_sig}" if self.sidecar_sig else "")


@dataclass(frozen=True)
class Problem:
    """Something found while walking that cannot become a pin (recorded in the failure ledger)."""

    path: Path | str
    pin_id: str
    error: str
    message: str
    stage: str = "discover"


@dataclass(frozen=True)
class Skip:
    """A file that is deliberately not ingested, named with the reason (never silently dropped)."""

    path: str
    reason: str  # not_media | camera_raw | hidden | not_a_page | database | symlink_outside | symlink_loop
    message: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"path": self.path, "reason": self.reason, "message": self.message}


@dataclass
class Discovery:
    """What a walk found."""

    entries: list[Entry]
    problems: list[Problem]
    skips: list[Skip] = field(default_factory=list)
    listed: set[str] | None = None  # object storage: the URI of every object and folder listed
    attributes: dict[str, Any] = field(default_factory=dict)  # name -> Arrow type the entries' attrs take

    def keep_unique_ids(self) -> None:
        """Sort entries by pin id and keep one per id; the others become ``duplicate_id`` problems (a
        manifest "id" may repeat another pin's id)."""
        self.entries.sort(key=lambda e: (e.pin_id, e.file))
        unique: list[Entry] = []
        for e in self.entries:
            if unique and unique[-1].pin_id == e.pin_id:
                self.problems.append(Problem(e.path, e.pin_id, "duplicate_id",
                                             f"pin id {e.pin_id!r} is already taken by {unique[-1].uri}", "discover"))
                continue
            unique.append(e)
        self.entries = unique

    @property
    def skipped(self) -> int:
        """How many files were skipped (each is named in ``skips``)."""
        return len(self.skips)
