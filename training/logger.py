"""Run logging: metrics.csv (one row per evaluation), TensorBoard events and learning_curve.png in the run folder."""

from __future__ import annotations

import csv
import io
import numbers
import os
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from mrq_agents.files import METRICS_FILE
from mrq_agents.serialization import atomic_write_bytes

CURVE_PNG = "learning_curve.png"


def _tb_name(key: str) -> str:
    """CSV column -> TensorBoard tag: eval_return_mean -> eval/return_mean, value_loss -> loss/value_loss."""
    if "/" in key:
        return key
    if key.startswith("eval_"):
        return "eval/" + key[len("eval_") :]
    if key == "wall_time":
        return "time/wall_time"
    return ("loss/" if "loss" in key else "train/") + key


def _parse(text: str) -> Any:
    """A CSV cell -> None (empty), int, float, or the string itself."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


class RunLogger:
    """Writes a run folder's metrics: metrics.csv (one row per evaluation), TensorBoard events, learning_curve.png."""

    def __init__(self, out_dir: str | os.PathLike, title: str, resume_step: int | None = None):
        """`resume_step`: the env step of the checkpoint being resumed; later CSV rows and TB events are dropped."""
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.csv_path = self.out_dir / METRICS_FILE
        self.png_path = self.out_dir / CURVE_PNG
        self._header: list[str] | None = None  # None: metrics.csv does not exist yet
        if resume_step is not None and self.csv_path.is_file():
            self._truncate_csv(resume_step)
        else:
            self.csv_path.unlink(missing_ok=True)
        purge = None if resume_step is None else resume_step + 1
        self._writer = SummaryWriter(log_dir=str(self.out_dir), purge_step=purge)

    def _truncate_csv(self, resume_step: int) -> None:
        """Keep the header and the complete rows with step <= resume_step (later ones will be logged again)."""
        with open(self.csv_path, newline="") as f:
            lines = list(csv.reader(f))
        if not lines or "step" not in lines[0]:
            self.csv_path.unlink()
            return
        header, col = lines[0], lines[0].index("step")
        kept = [
            r
            for r in lines[1:]
            if len(r) == len(header) and _is_number(_parse(r[col])) and _parse(r[col]) <= resume_step
        ]
        buf = io.StringIO(newline="")
        csv.writer(buf).writerows([header, *kept])
        atomic_write_bytes(self.csv_path, buf.getvalue().encode("utf-8"))
        self._header = header

    def log_eval(self, row: dict[str, float | int]) -> None:
        """Append one evaluation row (needs 'step'; columns fixed by the first row), log it to TB, redraw the plot."""
        if "step" not in row:
            raise ValueError(f"an evaluation row needs a 'step' entry, got columns {sorted(row)}")
        new_file = self._header is None
        if new_file:
            self._header = list(row)
        try:  # a row cut short by a full disk is dropped on --resume (`_truncate_csv`)
            with open(self.csv_path, "a", newline="") as f:
                w = csv.writer(f)
                if new_file:
                    w.writerow(self._header)
                w.writerow(["" if row.get(k) is None else row[k] for k in self._header])  # unknown keys: CSV ignores
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.csv_path)) from None
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and _is_number(value):
                self._writer.add_scalar(_tb_name(key), float(value), global_step=step)
        self._writer.flush()
        self._plot()

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """TensorBoard only, e.g. {"train/episode_return": 12.5}."""
        for key, value in scalars.items():
            self._writer.add_scalar(key, float(value), global_step=int(step))

    def rows(self) -> list[dict]:
        """The rows currently in metrics.csv; numbers parsed to int/float, empty cells to None."""
        if not self.csv_path.is_file():
            return []
        with open(self.csv_path, newline="") as f:
            return [{k: _parse(v or "") for k, v in r.items()} for r in csv.DictReader(f)]

    def _plot(self) -> None:
        """Redraw learning_curve.png atomically: mean eval return with a +/- std band against env steps."""
        from matplotlib.figure import Figure  # lazy; a bare Figure renders with Agg and leaves pyplot alone

        rows = [r for r in self.rows() if _is_number(r.get("step")) and _is_number(r.get("eval_return_mean"))]
        steps = [r["step"] for r in rows]
        mean = [r["eval_return_mean"] for r in rows]
        std = [r.get("eval_return_std") if _is_number(r.get("eval_return_std")) else 0.0 for r in rows]
        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        ax = fig.add_subplot()
        ax.plot(steps, mean, marker="." if len(rows) < 30 else None)
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.25)
        ax.set(xlabel="environment steps", ylabel="evaluation return", title=self.title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        atomic_write_bytes(self.png_path, buf.getvalue())

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
