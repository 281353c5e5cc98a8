"""Query-time text encoding on CUDA without per-call overhead: the text tower captured as CUDA graphs, one
per small batch size (1, 2, 4, 8; a batch is padded up to the next), replayed for each query.

A search encodes one short text; eagerly that is a few hundred small kernel launches whose cost (tens of
microseconds each from Python) dwarfs the arithmetic. A replayed graph launches them all at once. The
graphs are captured on first use of each size; if capture fails (an op that cannot be captured in this
torch build), encoding stays eager and says so once in the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pinembed")

BUCKETS = (1, 2, 4, 8)


class TextGraphs:
    """``encode(tokens) -> features`` for token batches of at most ``BUCKETS[-1]`` rows on a CUDA device,
    through captured graphs. Thread-safe (replays share their input and output buffers)."""

    def __init__(self, encode: Callable[[Any], Any], context_length: int, device: str) -> None:
        self.encode, self.context_length, self.device = encode, context_length, device
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}  # bucket -> (graph, static input, static output)
        self._lock = threading.Lock()
        self.broken = False

    def fits(self, n: int) -> bool:
        """Whether a batch of ``n`` texts is replayed from a graph."""
        return not self.broken and 0 < n <= BUCKETS[-1]

    def __call__(self, tokens: Any) -> Any:
        """Features of ``tokens`` ((n, context_length) on the device), as a fresh tensor."""
        n = int(tokens.shape[0])
        bucket = next(b for b in BUCKETS if b >= n)
        with self._lock:
            if bucket not in self._graphs:
                try:
                    self._graphs[bucket] = self._capture(bucket)
                except Exception as e:  # stay eager: correct, only slower
                    self.broken = True
                    log.warning("text encoding stays eager: CUDA graph capture failed (%s)", e)
                    return self.encode(tokens)
            graph, static_in, static_out = self._graphs[bucket]
            static_in.zero_()
            static_in[:n].copy_(tokens)
            graph.replay()
            return static_out[:n].clone()

    def _capture(self, bucket: int) -> tuple[Any, Any, Any]:
        import torch

        static_in = torch.zeros((bucket, self.context_length), dtype=torch.long, device=self.device)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(3):  # warm-up on a side stream, as capture requires
                self.encode(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self.encode(static_in)
        return graph, static_in, static_out
