"""The fast update path: each encoder update and each value+policy step replayed from a captured CUDA graph.

Why. The plain path launches hundreds of small kernels per update from Python, and at the paper's size the GPU
spends most of each update waiting for the host. Capturing an update once and replaying it costs one launch.

What stays the same. The captured programs run the learner's own step functions (`MRQLearner.encoder_update`,
`MRQLearner.value_policy_step`), so the math is the plain path's. Everything random is drawn eagerly before each
replay, in the plain path's order, and copied into the graph's static inputs; the reward scales and the
termination flag live in 0-d device tensors refreshed at each target sync. The one numerical difference is the
optimizer kernel (fused AdamW instead of the default), equal within float32 rounding.

What it costs. No host-device synchronisation in the loop: sampling (inverse CDF over the priorities), priority
writes and the running maximum stay on the device, and metrics are the graph's output tensors, overwritten by
the next update (read them at log time, or clone them to keep them).

Capture. The first call of a step warms it up on a side stream (three real updates, so that lazily created
optimizer state and library workspaces exist), restores every tensor the warm-up changed (networks, optimizer
state, priorities), then captures it and replays it for the real update. If capture fails, a warning says so and
the step keeps running eagerly: slower, never wrong. On the CPU there is nothing to capture; the same step
functions run eagerly with the fused optimizer.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:
    from mrq_agents.learner import MRQLearner
    from mrq_agents.replay import ReplayBuffer

WARMUP_CALLS = 3


class CapturedStep:
    """A function of fixed-shape tensor inputs: eager until first called on CUDA, then a replayed CUDA graph.

    `body(**inputs)` returns a dict of tensors. `mutated()` lists every tensor the body changes in place, so the
    warm-up before capture can be undone; `optimizers` are the ones it steps (their state is restored too).
    `device` is where the body draws its own random numbers (the discrete policy's Gumbel noise): the warm-up
    puts that generator back too, so capturing does not shift the random stream.
    """

    def __init__(self, name: str, body: Callable[..., dict[str, torch.Tensor]], mutated: Callable[[], list],
                 optimizers: list[torch.optim.Optimizer], device: torch.device, capture: bool):
        self.name = name
        self.device = device
        self.body = body
        self.mutated = mutated
        self.optimizers = optimizers
        self.capture = capture
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.capture or self.failed:
            return self.body(**inputs)
        if self.graph is None:
            self.inputs = {k: v.clone() for k, v in inputs.items()}
            try:
                self._capture()
            except RuntimeError as error:  # e.g. an op without graph support in this torch build
                self.graph = None
                self.failed = True
                warnings.warn(f"CUDA graph capture of the {self.name} failed ({str(error).splitlines()[0]}); "
                              "that step runs eagerly from now on (same math, slower)", RuntimeWarning)
                return self.body(**inputs)
        else:
            for key, value in inputs.items():
                self.inputs[key].copy_(value)
        self.graph.replay()
        return self.outputs

    def _capture(self) -> None:
        saved = self.rehearse(WARMUP_CALLS, on_side_stream=True)
        try:
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)  # the graph owns the gradients it writes
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.outputs = self.body(**self.inputs)
            self.graph = graph
        finally:
            restore(saved, self.optimizers)

    def rehearse(self, calls: int, on_side_stream: bool = False):
        """Run the body `calls` times on the current static inputs and return what restores the state from
        before (`restore(saved, optimizers)` undoes them). Capture uses it for its warm-up; tests call it on the
        CPU to check that a warm-up leaves no trace."""
        saved = snapshot(self.mutated(), self.optimizers)
        cuda_generators = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda_generators):  # the CPU generator always, plus this GPU's
                self._run(calls, on_side_stream)
        finally:
            restore(saved, self.optimizers)
        return saved

    def _run(self, calls: int, on_side_stream: bool) -> None:
        """The body `calls` times; for capture on a side stream, as CUDA graph warm-ups must run."""
        if on_side_stream:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(calls):
                    self.body(**self.inputs)
            torch.cuda.current_stream().wait_stream(stream)
        else:
            for _ in range(calls):
                self.body(**self.inputs)


def snapshot(tensors: list[torch.Tensor], optimizers: list[torch.optim.Optimizer]) -> dict:
    """Copies of `tensors` and of the optimizers' per-parameter state (None where none exists yet)."""
    states = []
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for param in group["params"]:
                state = optimizer.state.get(param)
                states.append({k: v.clone() for k, v in state.items()} if state else None)
    return {"tensors": [(t, t.detach().clone()) for t in tensors], "optimizer_states": states}


@torch.no_grad()
def restore(saved: dict, optimizers: list[torch.optim.Optimizer]) -> None:
    """Copy a `snapshot` back in place. Optimizer state created since is zeroed, as a fresh AdamW starts."""
    for tensor, copy in saved["tensors"]:
        tensor.copy_(copy)
    states = iter(saved["optimizer_states"])
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for param in group["params"]:
                before, now = next(states), optimizer.state.get(param)
                if not now:
                    continue
                for key, value in now.items():
                    if before is None:
                        value.zero_()
                    else:
                        value.copy_(before[key])


class FastUpdate:
    """The fast path's encoder and value+policy steps and the device scalars they read; `MRQLearner.update`
    calls them in its one cadence."""

    def __init__(self, learner: "MRQLearner"):
        self.learner = learner
        self.capture = learner.device.type == "cuda"
        self.reward_scale, self.target_reward_scale, self.use_termination = (
            torch.zeros((), device=learner.device) for _ in range(3))
        self.buffer: "ReplayBuffer | None" = None
        self._bound_to: tuple = ()
        self.encoder_step: CapturedStep | None = None
        self.value_step: CapturedStep | None = None
        self.refresh()

    def refresh(self, buffer: "ReplayBuffer | None" = None) -> None:
        """Copy the learner's reward scales (and the buffer's termination flag) into the device scalars the
        graphs read: host values, so a launch each and no synchronisation."""
        self.reward_scale.fill_(self.learner.reward_scale)
        self.target_reward_scale.fill_(self.learner.target_reward_scale)
        if buffer is not None:
            self.use_termination.fill_(float(buffer.any_termination))

    def reset(self) -> None:
        """After the learner's state was loaded: take its reward scales and capture again on the next update
        (loading replaced the optimizers' state tensors)."""
        self.refresh()
        self._bound_to = ()

    def _bind(self, buffer: "ReplayBuffer") -> None:
        """(Re)build the steps for this buffer; a graph reads the buffer's tensors at fixed addresses."""
        key = (id(buffer), buffer.frames.data_ptr(), buffer.priority.data_ptr(), buffer.max_priority.data_ptr())
        if key == self._bound_to:
            return
        learner = self.learner
        self.buffer = buffer
        buffer.static_shapes = buffer.static_shapes or self.capture
        self.encoder_step = CapturedStep(
            "encoder update", self._encoder_body,
            mutated=lambda: list(learner.nets.encoder.parameters()),
            optimizers=[learner.encoder_opt], device=learner.device, capture=self.capture)
        self.value_step = CapturedStep(
            "value and policy update", self._value_body,
            mutated=lambda: [*learner.nets.value.parameters(), *learner.nets.policy.parameters(),
                             buffer.priority, buffer.max_priority],
            optimizers=[learner.value_opt, learner.policy_opt], device=learner.device, capture=self.capture)
        self._bound_to = key

    def _encoder_body(self, starts: torch.Tensor, **draws: torch.Tensor) -> dict[str, torch.Tensor]:
        horizon = self.learner.config.enc_horizon
        batch = self.buffer.gather(starts, horizon, all_next_states=True)
        return self.learner.encoder_update(batch, use_termination=self.use_termination, draws=draws)

    def _value_body(self, uniforms: torch.Tensor, **draws: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.learner.value_policy_step(self.buffer, uniforms, draws, self.reward_scale,
                                              self.target_reward_scale)

    def run_encoder(self, buffer: "ReplayBuffer", starts: torch.Tensor) -> dict[str, torch.Tensor]:
        """One encoder update (`MRQLearner.update` runs the cadence); its randomness is drawn here, eagerly."""
        self._bind(buffer)
        c = self.learner.config
        return self.encoder_step(starts=starts, **self.learner.draw_encoder_noise(c.batch_size, c.enc_horizon))

    def run_value_policy(self, buffer: "ReplayBuffer") -> dict[str, torch.Tensor]:
        """One value and one policy update on a batch drawn from `buffer`."""
        self._bind(buffer)
        batch_size = self.learner.config.batch_size
        uniforms = buffer.draw_uniforms(batch_size)
        return self.value_step(uniforms=uniforms, **self.learner.draw_value_noise(batch_size))
