"""RunLogger: metrics.csv rows, resume truncation, learning-curve PNG, TensorBoard events."""

import glob
import os

import pytest

from mrq_agents.training.logger import RunLogger

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(step, **extra):
    return {"step": step, "wall_time": step / 100, "eval_return_mean": step / 10, "eval_return_std": 1.5, **extra}


def _tb_steps(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_rows_png_and_tensorboard(tmp_path):
    with RunLogger(tmp_path, "MR.Q on Pendulum-v1") as log:
        log.log_eval(_row(1000, value_loss=0.25))
        log.log_eval(_row(2000, extra_unknown=3.0))  # not in the header: ignored; value_loss missing: empty cell
        log.log_scalars(1500, {"train/episode_return": -120.5})
        rows = log.rows()
    assert rows == [_row(1000, value_loss=0.25), _row(2000, value_loss=None)]
    assert isinstance(rows[0]["step"], int)
    assert (tmp_path / "metrics.csv").read_text().splitlines()[
        0
    ] == "step,wall_time,eval_return_mean,eval_return_std,value_loss"
    assert (tmp_path / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    assert glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert _tb_steps(tmp_path, "eval/return_mean") == [1000, 2000]
    assert _tb_steps(tmp_path, "loss/value_loss") == [1000]
    assert _tb_steps(tmp_path, "train/episode_return") == [1500]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_resume_drops_rows_after_checkpoint_and_appends(tmp_path):
    with RunLogger(tmp_path, "run") as log:
        for step in (1000, 2000, 3000, 4000):
            log.log_eval(_row(step, value_loss=0.1))
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("5000,50.0,")  # a half-written row from the killed run
    with RunLogger(tmp_path, "run", resume_step=2000) as log:
        assert [r["step"] for r in log.rows()] == [1000, 2000]
        for step in (3000, 4000):
            log.log_eval(_row(step, other=1.0))  # header kept from the existing file
        rows = log.rows()
    assert [r["step"] for r in rows] == [1000, 2000, 3000, 4000]
    assert set(rows[-1]) == {"step", "wall_time", "eval_return_mean", "eval_return_std", "value_loss"}
    assert rows[-1]["value_loss"] is None
    assert _tb_steps(tmp_path, "eval/return_mean") == [1000, 2000, 3000, 4000]  # purged, no duplicates


def test_fresh_run_replaces_metrics_and_resume_without_csv(tmp_path):
    with RunLogger(tmp_path, "old") as log:
        log.log_eval(_row(1000))
    with RunLogger(tmp_path, "new") as log:
        assert log.rows() == []
        log.log_eval(_row(10))
        assert [r["step"] for r in log.rows()] == [10]
    with RunLogger(tmp_path / "other", "resumed", resume_step=500) as log:
        log.log_eval(_row(600))
        assert [r["step"] for r in log.rows()] == [600]
    with pytest.raises(ValueError, match="'step'"):
        RunLogger(tmp_path / "x", "t").log_eval({"eval_return_mean": 1.0})
