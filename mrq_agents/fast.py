"""The fast update path: a wrapper around an `MRQLearner` that the learner never sees.

`accelerate(learner)` gives the learner fused AdamW optimizers and replaces its two steps (`encoder_step`,
`rl_step`) by `CapturedStep`s: on CUDA each step is captured once as a CUDA graph and replayed; on the CPU there is
nothing to capture, and the same steps run eagerly with the fused optimizer.

Why. The plain path launches hundreds of small kernels per update from Python, and at the paper's size the GPU
spends most of each update waiting for the host. Capturing an update once and replaying it costs one launch.

What stays the same. The captured programs run the learner's own step functions, so the math is the plain path's.
Everything random is drawn eagerly by the learner before each step and copied into the graph's static inputs;
the reward scales and the termination flag are the learner's own device tensors. The one numerical difference is
the optimizer kernel (fused AdamW instead of the default), equal within float32 rounding.

What it costs. No host-device synchronisation in the loop: sampling (inverse CDF over the priorities), priority
writes and the running maximum stay on the device, and metrics are the graph's output tensors, overwritten by
the next update (read them at log time, or clone them to keep them).

Capture. The first call of a step warms it up on a side stream (three real updates, so that lazily created
optimizer state and library workspaces exist), restores every tensor the warm-up changed (networks, optimizer
state, priorities), then captures it and replays it for the real update. If capture fails, a warning says so and
the step keeps running eagerly: slower, never wrong.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable

import torch

from mrq_agents.learner import EncoderNoise, MRQLearner, ValueNoise

if TYPE_CHECKING:
    from mrq_agents.replay import ReplayBuffer

WARMUP_CALLS = 3


class CapturedStep:
    """A function of fixed-shape tensor inputs: eager until first called on CUDA, then a replayed CUDA graph.

    `body(**inputs)` returns a dict of tensors. `mutated()` lists every tensor the body changes in place, so the
    warm-up before capture can be undone; `optimizers` are the ones it steps (their state is restored too).
    `device` is where the body draws its own random numbers (the discrete policy's Gumbel noise): the warm-up
    puts that generator back too, so capturing does not shift the random stream.
    """

    def __init__(
        self,
        name: str,
        body: Callable[..., dict[str, torch.Tensor]],
        mutated: Callable[[], list],
        optimizers: list[torch.optim.Optimizer],
        device: torch.device,
        capture: bool,
    ):
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
                warnings.warn(
                    f"CUDA graph capture of the {self.name} failed ({str(error).splitlines()[0]}); "
                    "that step runs eagerly from now on (same math, slower)",
                    RuntimeWarning,
                )
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


def accelerate(learner: MRQLearner) -> MRQLearner:
    """Put `learner` on the fast path (before its first update or checkpoint load); returns it."""
    FastPath(learner)
    return learner


def fused(optimizer: torch.optim.AdamW, capturable: bool) -> torch.optim.AdamW:
    """The same AdamW (parameters, learning rate, weight decay) with the fused kernel; no state yet."""
    defaults = optimizer.defaults
    return torch.optim.AdamW(
        optimizer.param_groups[0]["params"],
        lr=defaults["lr"],
        weight_decay=defaults["weight_decay"],
        fused=True,
        capturable=capturable,
    )


class FastPath:
    """The learner's two steps as `CapturedStep`s bound to one replay buffer (a graph reads the buffer's tensors at
    fixed addresses), installed over the learner's own methods."""

    def __init__(self, learner: MRQLearner):
        if learner.num_updates:
            raise ValueError("accelerate() a learner before its first update")
        self.learner = learner
        self.capture = learner.device.type == "cuda"
        for name in ("encoder_opt", "value_opt", "policy_opt"):
            setattr(learner, name, fused(getattr(learner, name), capturable=self.capture))
        self.plain_encoder_step, self.plain_rl_step = learner.encoder_step, learner.rl_step
        self.plain_load_state_dict = learner.load_state_dict
        learner.encoder_step, learner.rl_step = self.encoder_step, self.rl_step
        learner.load_state_dict = self.load_state_dict
        self.buffer: "ReplayBuffer | None" = None
        self._bound_to: tuple = ()
        self.encoder: CapturedStep | None = None
        self.rl: CapturedStep | None = None

    def load_state_dict(self, state: dict) -> None:
        """The learner's, then capture again on the next update (loading replaced the optimizers' state tensors)."""
        self.plain_load_state_dict(state)
        self._bound_to = ()

    def _bind(self, buffer: "ReplayBuffer") -> None:
        """(Re)build the steps for this buffer."""
        key = (id(buffer), buffer.frames.data_ptr(), buffer.priority.data_ptr(), buffer.max_priority.data_ptr())
        if key == self._bound_to:
            return
        learner = self.learner
        self.buffer = buffer
        buffer.static_shapes = buffer.static_shapes or self.capture
        self.encoder = CapturedStep(
            "encoder update",
            self._encoder_body,
            mutated=lambda: list(learner.nets.encoder.parameters()),
            optimizers=[learner.encoder_opt],
            device=learner.device,
            capture=self.capture,
        )
        self.rl = CapturedStep(
            "value and policy update",
            self._rl_body,
            mutated=lambda: [
                *learner.nets.value.parameters(),
                *learner.nets.policy.parameters(),
                buffer.priority,
                buffer.max_priority,
            ],
            optimizers=[learner.value_opt, learner.policy_opt],
            device=learner.device,
            capture=self.capture,
        )
        self._bound_to = key

    def encoder_step(
        self, buffer: "ReplayBuffer", starts: torch.Tensor, noise: EncoderNoise
    ) -> dict[str, torch.Tensor]:
        self._bind(buffer)
        return self.encoder(starts=starts, **_present(noise))

    def rl_step(self, buffer: "ReplayBuffer", uniforms: torch.Tensor, noise: ValueNoise) -> dict[str, torch.Tensor]:
        self._bind(buffer)
        return self.rl(uniforms=uniforms, **_present(noise))

    def _encoder_body(self, starts: torch.Tensor, **noise: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.plain_encoder_step(self.buffer, starts, _noise(EncoderNoise, noise))

    def _rl_body(self, uniforms: torch.Tensor, **noise: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.plain_rl_step(self.buffer, uniforms, _noise(ValueNoise, noise))


def _present(noise: tuple) -> dict[str, torch.Tensor]:
    """A noise tuple as the static inputs of a captured step (its fields that are drawn)."""
    return {k: v for k, v in noise._asdict().items() if v is not None}


def _noise(kind: type, tensors: dict[str, torch.Tensor]):
    return kind(**{field: tensors.get(field) for field in kind._fields})
