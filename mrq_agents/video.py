"""Recording episodes to mp4 from the env's own full-resolution render (not the network's 84x84 input)."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

from mrq_agents.envs import EnvConfig, video_fps
from mrq_agents.episodes import Progress
from mrq_agents.errors import MRQError
from mrq_agents.serialization import atomic_write


def _render(env: gym.Env) -> np.ndarray:
    try:
        frame = env.render()
    except gym.error.DependencyNotInstalled as err:
        raise MRQError(f"cannot render {env.spec.id if env.spec else 'this env'}: {str(err).splitlines()[0]}") from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise MRQError("the env did not return an RGB frame from render(); build it with render_mode='rgb_array'")
    return frame


def record_episodes(
    env: gym.Env,
    config: EnvConfig,
    act: Callable[[np.ndarray], np.ndarray | int],
    path: str | Path,
    episodes: int,
    seeds: list[int],
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Play `episodes` episodes on `env` (made with render_mode='rgb_array') and write them to one mp4 at `path`.

    Returns per-episode returns and lengths; `progress` as in `episodes.run_episodes`.
    """
    import imageio.v2 as imageio

    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)

    def write(tmp: str) -> None:  # into a temp file that replaces `path` once whole: a failed write leaves no video
        writer = imageio.get_writer(
            tmp,
            fps=video_fps(env, config),
            codec="libx264",
            macro_block_size=1,
            quality=7,
            pixelformat="yuv420p",
            ffmpeg_log_level="error",
        )
        try:
            for k in range(episodes):
                obs, _ = env.reset(seed=seeds[k])
                writer.append_data(_even(_render(env)))
                done = False
                while not done:
                    obs, reward, terminated, truncated, _ = env.step(act(obs))
                    writer.append_data(_even(_render(env)))
                    returns[k] += float(reward)
                    lengths[k] += 1
                    done = terminated or truncated
                    if progress is not None:
                        progress(k + 1 if done else k, int(lengths[k]), float(returns[k]))
        finally:
            writer.close()
        check_whole(tmp)

    atomic_write(path, write, suffix=".tmp.mp4")  # ffmpeg picks the container by the name's end
    return returns, lengths


def check_whole(path: str | Path) -> None:
    """Raise OSError unless the mp4 at `path` is whole: its top-level boxes fill the file and include the index
    (`moov`, which ffmpeg writes last). ffmpeg does not report a write that failed (a full disk, a file-size
    limit) to imageio; the file shows it."""
    size, pos, boxes = os.path.getsize(path), 0, set()
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            length, kind = struct.unpack(">I4s", f.read(8))
            if length == 1:  # a 64-bit size follows
                length = struct.unpack(">Q", f.read(8))[0]
            elif length == 0:  # to the end of the file
                length = size - pos
            if length < 8:
                break
            boxes.add(kind)
            pos += length
    if pos != size or b"moov" not in boxes:
        raise OSError(errno.EIO, "the video was cut short (a full disk or a file-size limit?)", str(path))


def _even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: crop one row/column where needed."""
    height, width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
    return np.ascontiguousarray(frame[:height, :width, :3])
