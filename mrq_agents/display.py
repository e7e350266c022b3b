"""What the command line shows: a console, the training progress bar, and plain aligned tables."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import typer


def console():
    """A rich console on stdout (the training log's lines)."""
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=True)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Rows of text (the first is the header) in left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


class progress:
    """A rich progress bar with steps/s, the last episode return and the last evaluation (on a terminal only)."""

    def __init__(self, total: int, done: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console(),
            disable=not sys.stdout.isatty(),
        )
        self.task = self.bar.add_task("train", total=total, completed=done, info="")

    def __enter__(self) -> Callable[[int, dict], None]:
        self.bar.__enter__()

        def update(step: int, info: dict) -> None:
            episode = info["episode_return"]
            evaluation = info["eval_return"]
            text = (
                f"{info['steps_per_s']:.1f} steps/s | ep return "
                f"{'-' if math.isnan(episode) else f'{episode:.1f}'} | eval "
                f"{'-' if math.isnan(evaluation) else f'{evaluation:.1f}'}"
            )
            if "evaluating" in info:
                text += " | evaluating: {}/{} episodes".format(*info["evaluating"])
            self.bar.update(self.task, completed=step, info=text)

        return update

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)


@contextlib.contextmanager
def download_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bytes progress bar (size, speed, time left) on stderr when it is a terminal, erased when done; yields
    `advance(n)`. Nothing shown when piped."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True, highlight=False),
        disable=not sys.stderr.isatty(),
        transient=True,
    )
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def episode_progress(total: int, what: str) -> Iterator[Callable[[int, int, float], None] | None]:
    """While episodes play (`Policy.rollout`'s `progress`): on a terminal, a bar on stderr of `what` ('evaluating',
    'recording') with the episodes done of `total` and the current episode's steps and return so far, erased when
    done. Elsewhere (piped, redirected) it yields None: nothing shown, nothing spent."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    count = [MofNCompleteColumn(), TextColumn("episodes |")] if total > 1 else []  # one episode: a pulsing bar
    bar = Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        *count,
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True, highlight=False),
        transient=True,
        redirect_stdout=False,  # the command's own lines stay on stdout
        redirect_stderr=False,
    )
    task = bar.add_task(what, total=total if total > 1 else None, info="")
    shown = {"at": 0.0, "done": 0}

    def update(done: int, steps: int, episode_return: float) -> None:
        now = time.monotonic()
        if done == shown["done"] and now - shown["at"] < 0.1:  # a step's update costs more than the step
            return
        shown.update(at=now, done=done)
        episode = f"episode {min(done + 1, total)}: " if total > 1 else ""
        bar.update(task, completed=done, info=f"{episode}{steps:,} steps, return {episode_return:.1f}")

    with bar:
        yield update


class SweepProgress:
    """Live progress of a sweep: a table redrawn in place on a terminal, else one line per change."""

    def __init__(self) -> None:
        self.live = None
        self.seen: dict[str, tuple] = {}

    def __enter__(self) -> "SweepProgress":
        if sys.stdout.isatty():
            from rich.live import Live

            self.live = Live(console=console(), refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, records: list[dict]) -> None:
        if self.live is not None:
            self.live.update(self._table(records))
            return
        for r in records:  # plain output: a line when a run changes status or evaluates
            key = (r["status"], r["eval_return"] if not math.isnan(r["eval_return"]) else None)
            if self.seen.get(r["name"]) != key:
                self.seen[r["name"]] = key
                typer.echo(sweep_line(r))

    @staticmethod
    def _table(records: list[dict]):
        from rich.table import Table

        table = Table(box=None)
        for column in ("run", "status", "step", "steps/s", "last eval"):
            table.add_column(column, justify="left" if column in ("run", "status") else "right")
        for r in records:
            table.add_row(
                r["name"],
                r["status"],
                steps_text(r),
                "-" if math.isnan(r["steps_per_s"]) else f"{r['steps_per_s']:.1f}",
                "-" if math.isnan(r["eval_return"]) else f"{r['eval_return']:.1f}",
            )
        return table


def steps_text(r: dict) -> str:
    return f"{r['step']:,}" + (f"/{r['steps']:,}" if r.get("steps") else "")


def sweep_line(r: dict) -> str:
    """One plain line of a run's progress in a sweep."""
    line = f"[{r['env']} seed {r['seed']}] {r['status']} | step {steps_text(r)}"
    if not math.isnan(r["steps_per_s"]):
        line += f" | {r['steps_per_s']:.1f} steps/s"
    if not math.isnan(r["eval_return"]):
        line += f" | last eval {r['eval_return']:.1f}"
    if r["status"] in ("failed", "retrying") and r["error"]:
        line += f" | error: {r['error']}"
    return line
