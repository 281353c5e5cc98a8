"""The pipe protocol between a decode pool (``decode_pool.py``) and its worker processes
(``decode_worker.py``): length-prefixed pickle frames. Light on purpose: the worker loads it before
it redirects its output, and the decoders only after."""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

_HEADER = struct.Struct("!Q")


def send(stream: IO[bytes], obj: Any) -> None:
    """Write one length-prefixed pickle frame."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def recv(stream: IO[bytes]) -> Any:
    """Read one length-prefixed pickle frame; EOFError when the other side is gone."""
    head = _read_exact(stream, _HEADER.size)
    return pickle.loads(_read_exact(stream, _HEADER.unpack(head)[0]))


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)  # a buffered stream reads until n bytes or the end
    if data is None or len(data) < n:
        raise EOFError("decode worker closed its pipe")
    return data
