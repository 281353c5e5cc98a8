"""What the long commands print besides their result: a progress bar on a terminal, and the failed,
warned and skipped inputs of a run (on stderr)."""

from __future__ import annotations

from typing import Any

import click

from pinembed.cli.shown import shown


def print_failures(failures: list[dict[str, Any]], n_failed: int, db: str, label: str = "failed") -> None:
    """The first 20 failure (or warning) rows of a run, and how to list the rest."""
    for f in failures[:20]:
        click.echo(f"  {label}: {shown(f['pin_id'] or f['uri'])}: [{f['stage']}/{f['error']}] {f['message']}", err=True)
    if len(failures) > 20:
        click.echo(f"  ... and {len(failures) - 20} more: pinembed failures --db {db}", err=True)


def print_skipped(skipped: list[dict[str, str]], list_all: bool, command: str) -> None:
    """One summary line for skipped files (by reason), or each of them with --list-skipped."""
    if not skipped:
        return
    if list_all:
        for f in skipped:
            click.echo(f"  skipped: {f['path']}: [{f['reason']}] {f['message']}", err=True)
        return
    by: dict[str, int] = {}
    for f in skipped:
        by[f["reason"]] = by.get(f["reason"], 0) + 1
    reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(by.items(), key=lambda x: -x[1]))
    click.echo(f"  skipped {len(skipped)} file(s) ({reasons}): `{command} --list-skipped` names them", err=True)


class ProgressBar:
    """A rich progress bar on a terminal; nothing otherwise. The object it yields is called with
    (done, total) and told the phase with ``.phase(label)``."""

    def __init__(self, enabled: bool, label: str = "embedding") -> None:
        self.enabled = enabled
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task(self.label, total=None)
        return self

    def update(self, done: int, total: int) -> None:
        """Show ``done`` of ``total``."""
        self._bar.update(self._task, completed=done, total=total)

    def phase(self, label: str) -> None:
        """What the run is doing now ("loading model", "embedding")."""
        self._bar.update(self._task, description=label, completed=0, total=None)

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
