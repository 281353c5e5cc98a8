"""Runners compose the stages (``read_stage.py``, ``embed_stage.py``; the driver writes): ``local`` (threads
and decode processes in this process, the default) and ``ray`` (Ray Data, many machines). A runner is
one module here exposing ``run(work)``: read and embed ``work.todo`` and yield each finished batch
(``embed_stage.Embedded``) or unread input (``read_stage.Unread``) back to the driver, which lands it;
a runner never changes the driver. It may expose ``prepare(opts, todo)``, which the driver calls
before the model loads."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pinembed.errors import UsageError

if TYPE_CHECKING:
    from pinembed.embedders.base import Embedder

    from ..embed_stage import Embedded
    from ..entry import Entry
    from ..model import ModelSpec
    from ..options import IngestOptions, Progress
    from ..read_stage import Unread

NAMES = ("local", "ray")


@dataclass
class Work:
    """What the driver hands a runner: the entries to read and embed, the run's options (the runner
    settles their device defaults on its own copy), the embedder (loaded on the first call, the driver
    timing it), the model spec for workers that load their own copy, and the progress display."""

    todo: list[Entry]
    opts: IngestOptions
    embedder: Callable[[], Embedder]
    model_spec: ModelSpec | None = None
    progress: Progress | None = None


Runner = Callable[[Work], "Iterator[Embedded | Unread]"]


def get(name: str) -> Runner:
    """The ``run`` function of the runner called ``name``; UsageError for an unknown one."""
    if name not in NAMES:
        raise UsageError(f"unknown runner {name!r}", f"the runners are {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    if hasattr(module, "require_ray"):
        module.require_ray()  # before anything is planned: say how to install it
    return module.run


def prepare(name: str, opts: IngestOptions, todo: list[Any]) -> None:
    """Let the runner ``name`` start what it needs while the driver loads the model (the local
    runner's decode processes), when there is something to do."""
    if todo and name in NAMES:
        fn = getattr(importlib.import_module(f"{__name__}.{name}"), "prepare", None)
        if fn is not None:
            fn(opts, todo)
