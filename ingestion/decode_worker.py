"""The decode worker process: reads (path, VideoParams) frames on stdin, answers on stdout.

Run by ``decode_pool.DecodePool`` as ``python -m pinembed.ingestion.decode_worker``. The protocol
uses a private copy of stdout; fd 1 itself points at stderr, so nothing a C library prints can
corrupt a frame. The first frame it sends is "ready", once its decoders are imported.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Serve decode requests until stdin closes."""
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    proto_in = sys.stdin.buffer
    from pinembed.errors import InputError
    from pinembed.ingestion import video
    from pinembed.ingestion.decode_pool import recv, send
    from pinembed.ingestion.video import decode_video

    video.IN_DECODE_WORKER = True  # no torch here, so decord may load first
    import av  # noqa: F401  (loaded now, while the parent is still planning, not at the first file)
    import decord  # noqa: F401

    send(proto_out, "ready")  # the parent starts each file's time bound after this
    while True:
        try:
            path, params = recv(proto_in)
        except (EOFError, KeyboardInterrupt):
            return
        try:
            send(proto_out, ("ok", decode_video(path, params)))
        except InputError as e:
            send(proto_out, ("input_error", e.message, e.hint, e.error))
        except Exception as e:  # anything else the decoder raises is still one file's failure
            send(proto_out, ("input_error", f"{type(e).__name__}: {e}"[:500], "", "decode_error"))


if __name__ == "__main__":
    main()
