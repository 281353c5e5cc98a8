"""Runners compose the stages (``stages.py``): ``local`` (threads and decode processes in this
process, the default) and ``ray`` (Ray Data, many machines). A runner is one module here exposing
``run(run, todo, progress)``: read and embed ``todo`` and hand each embedded batch to ``run.land``;
it may expose ``prepare(opts, todo)``, which the drivers call before the model loads (``prepare``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pinembed.errors import UsageError

NAMES = ("local", "ray")


def get(name: str) -> Callable[..., Any]:
    """The ``run`` function of the runner called ``name``; UsageError for an unknown one."""
    if name not in NAMES:
        raise UsageError(f"unknown runner {name!r}", f"the runners are {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    if hasattr(module, "require_ray"):
        module.require_ray()  # before anything is planned: say how to install it
    return module.run


def prepare(name: str, opts: Any, todo: list[Any]) -> None:
    """Let the runner ``name`` start what it needs while the driver loads the model (the local
    runner's decode processes), when there is something to do."""
    if todo and name in NAMES:
        fn = getattr(importlib.import_module(f"{__name__}.{name}"), "prepare", None)
        if fn is not None:
            fn(opts, todo)
