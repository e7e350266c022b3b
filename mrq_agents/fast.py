"""The fast update path: `FastLearner`, a subclass of `MRQLearner` that the learner never imports.

`FastLearner` takes fused AdamW optimizers and runs the learner's two steps (`encoder_step`, `rl_step`) as
`CapturedStep`s: on CUDA each step is captured once as a CUDA graph and replayed; on the CPU there is nothing to
capture, and the same steps run eagerly with the fused optimizer. A captured step reads its replay buffer at fixed
addresses and shapes, so on CUDA the buffer must sample its whole ring (`ReplayBuffer(static_shapes=True)`, see
`captures`).

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

from mrq_agents.device import resolve_device
from mrq_agents.learner import EncoderNoise, MRQLearner, ValueNoise

if TYPE_CHECKING:
    from mrq_agents.config import MRQConfig
    from mrq_agents.envs import EnvSpec
    from mrq_agents.networks import MRQNetworks
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


def resolve_fast(fast: bool | None, device: torch.device) -> bool:
    """`None` (auto): the fast path on CUDA, the plain one on the CPU."""
    return device.type == "cuda" if fast is None else bool(fast)


def captures(device: torch.device) -> bool:
    """Whether the fast path captures its steps as CUDA graphs on `device` (on CUDA only); its replay buffer must
    then be built with `static_shapes=True`."""
    return device.type == "cuda"


class FastLearner(MRQLearner):
    """`MRQLearner` with fused AdamW, whose two steps are `CapturedStep`s bound to one replay buffer (a graph reads
    the buffer's tensors at fixed addresses); the same math, see the module docstring."""

    def __init__(
        self,
        spec: "EnvSpec",
        config: "MRQConfig",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        nets: "MRQNetworks | None" = None,
    ):
        self.captures = captures(resolve_device(device))
        super().__init__(spec, config, device, precision, nets)
        self.buffer: "ReplayBuffer | None" = None
        self._bound_to: tuple = ()
        self.captured_encoder_step: CapturedStep | None = None
        self.captured_rl_step: CapturedStep | None = None

    def make_optimizer(self, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """AdamW with the fused kernel (capturable on CUDA); within float32 rounding of the default one."""
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True, capturable=self.captures)

    def encoder_step(
        self, buffer: "ReplayBuffer", starts: torch.Tensor, noise: EncoderNoise
    ) -> dict[str, torch.Tensor]:
        self._bind(buffer)
        return self.captured_encoder_step(starts=starts, **_present(noise))

    def rl_step(
        self, buffer: "ReplayBuffer", uniforms: torch.Tensor, noise: ValueNoise, train_policy: bool = True
    ) -> dict[str, torch.Tensor]:
        if not train_policy:  # a held policy (a fine-tune's first updates): the value update alone, eagerly
            return super().rl_step(buffer, uniforms, noise, train_policy=False)
        self._bind(buffer)
        return self.captured_rl_step(uniforms=uniforms, **_present(noise))

    def load_state_dict(self, state: dict) -> None:
        """The learner's, then capture again on the next update (loading replaced the optimizers' state tensors)."""
        super().load_state_dict(state)
        self._bound_to = ()

    def _bind(self, buffer: "ReplayBuffer") -> None:
        """(Re)build the captured steps for this buffer."""
        key = (id(buffer), buffer.frames.data_ptr(), buffer.priority.data_ptr(), buffer.max_priority.data_ptr())
        if key == self._bound_to:
            return
        if self.captures and not buffer.static_shapes:
            raise ValueError("a captured update samples the whole ring: build the ReplayBuffer with static_shapes=True")
        self.buffer = buffer
        self.captured_encoder_step = CapturedStep(
            "encoder update",
            self._encoder_body,
            mutated=lambda: list(self.nets.encoder.parameters()),
            optimizers=[self.encoder_opt],
            device=self.device,
            capture=self.captures,
        )
        self.captured_rl_step = CapturedStep(
            "value and policy update",
            self._rl_body,
            mutated=lambda: [
                *self.nets.value.parameters(),
                *self.nets.policy.parameters(),
                buffer.priority,
                buffer.max_priority,
            ],
            optimizers=[self.value_opt, self.policy_opt],
            device=self.device,
            capture=self.captures,
        )
        self._bound_to = key

    def _encoder_body(self, starts: torch.Tensor, **noise: torch.Tensor) -> dict[str, torch.Tensor]:
        return super().encoder_step(self.buffer, starts, _noise(EncoderNoise, noise))

    def _rl_body(self, uniforms: torch.Tensor, **noise: torch.Tensor) -> dict[str, torch.Tensor]:
        return super().rl_step(self.buffer, uniforms, _noise(ValueNoise, noise))


def _present(noise: tuple) -> dict[str, torch.Tensor]:
    """A noise tuple as the static inputs of a captured step (its fields that are drawn)."""
    return {k: v for k, v in noise._asdict().items() if v is not None}


def _noise(kind: type, tensors: dict[str, torch.Tensor]):
    return kind(**{field: tensors.get(field) for field in kind._fields})
