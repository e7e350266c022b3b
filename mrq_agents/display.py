"""What the command line shows: a console, the training progress bar, and plain aligned tables."""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Sequence

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
            self.bar.update(self.task, completed=step, info=text)

        return update

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)
