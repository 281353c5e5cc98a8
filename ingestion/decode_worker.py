"""The decode worker process: reads jobs on stdin, answers on stdout, one at a time.

Run by ``decode_pool.DecodePool`` as ``python -m pinembed.ingestion.decode_worker``. Jobs are
``("video", path, VideoParams)`` and ``("picture", bytes, name, PictureParams)``. The protocol uses a
private copy of stdout; fds 1 and 2 point at an unlinked temporary file, so nothing a C library
prints can corrupt a frame or reach the run's stderr: what was printed during a job, and the Python
warnings it raised, are that job's notes (harmless ones dropped, see ``HARMLESS``). The first frame
it sends is "ready", once the image decoders are imported (the video ones load at the first video).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

from pinembed import failpoints
from pinembed.errors import InputError
from pinembed.ingestion.decode_protocol import recv, send

#: Decoder messages about metadata that does not change the pixels: dropped from a file's notes.
HARMLESS = re.compile(
    r"unknown field with tag|does not end in null byte|tag ignored|unknown tag|"
    r"palette images with transparency expressed in bytes|metadata warning|"
    r"decompressionbomb|image size \(\d+ pixels\) exceeds limit",  # our own pixel limit applies first
    re.IGNORECASE,
)
MAX_NOTES = 5  # distinct notes kept per file
MAX_NOTE_CHARS = 300


class _Captured:
    """fds 1 and 2 redirected to an unlinked temporary file, read back after each job."""

    def __init__(self) -> None:
        self.read_fd, path = tempfile.mkstemp(prefix="pinembed-decode-")
        write_fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # after a truncation, writes start at 0 again
        os.unlink(path)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)

    def take(self) -> str:
        """What was printed since the last call (and forget it)."""
        sys.stdout.flush()
        sys.stderr.flush()
        size = os.fstat(self.read_fd).st_size
        if not size:
            return ""
        text = os.pread(self.read_fd, min(size, 1 << 16), 0).decode("utf-8", "replace")
        os.ftruncate(self.read_fd, 0)
        return text


def notes(printed: str, caught: list[warnings.WarningMessage]) -> list[str]:
    """A job's notes: distinct lines printed and warnings raised, harmless ones dropped, capped."""
    lines = [ln.strip() for ln in printed.splitlines()] + [f"{w.category.__name__}: {w.message}" for w in caught]
    out: list[str] = []
    for ln in lines:
        ln = ln[:MAX_NOTE_CHARS]
        if ln and not HARMLESS.search(ln) and ln not in out:
            out.append(ln)
    return out[:MAX_NOTES]


def _job(job: tuple[Any, ...], decoders: dict[str, Callable[..., Any]]) -> Any:
    kind = job[0]
    if kind == "video":
        failpoints.hit_file("decode", job[1])
        return decoders["video"](job[1], job[2])
    if kind == "picture":
        failpoints.hit_file("decode", job[2])
        return decoders["picture"](job[1], job[2], job[3])
    raise ValueError(f"unknown decode job {kind!r}")


def main() -> None:
    """Serve decode jobs until stdin closes."""
    proto_out = os.fdopen(os.dup(1), "wb")
    proto_in = sys.stdin.buffer
    captured = _Captured()
    # the decoders (PIL, pillow-heif, numpy) load only now, once fds 1 and 2 are captured: what they
    # print on import must not reach the protocol pipe (imported here for that, not for speed)
    from pinembed.ingestion import picture_decode, video_decode

    decoders = {"video": video_decode.decode_video, "picture": picture_decode.read_picture}
    video_decode.IN_DECODE_WORKER = True  # no torch here, so decord may load first (at the first video: 0.6 s)
    captured.take()
    send(proto_out, "ready")  # the parent starts each file's time bound after this
    while True:
        try:
            job = recv(proto_in)
        except (EOFError, KeyboardInterrupt):
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result: Any = ("ok", _job(job, decoders))
            except InputError as e:
                result = ("input_error", e.message, e.hint, e.error)
            except Exception as e:  # anything else the decoder raises is still one file's failure
                result = ("input_error", f"{type(e).__name__}: {e}"[:500], "", "decode_error")
        said = notes(captured.take(), caught)
        if result[0] == "ok":
            if hasattr(result[1], "notes"):  # a Picture or video Frames
                result[1].notes = said
            send(proto_out, result)
        else:
            send(proto_out, (*result, said))


if __name__ == "__main__":
    main()
