"""MR.Q's networks (docs/algorithm.md, "Networks"): state and state-action encoders with the linear MDP head,
value, policy."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mrq_agents.config import MRQConfig


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False)


class MLP(nn.Module):
    """Linear(in,h) -> LN -> act -> Linear(h,h) -> LN -> act -> Linear(h,out)."""

    def __init__(self, in_dim: int, out_dim: int, hdim: int, activation: type[nn.Module]):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hdim),
            _layer_norm(hdim),
            activation(),
            nn.Linear(hdim, hdim),
            _layer_norm(hdim),
            activation(),
            nn.Linear(hdim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform with the ReLU gain, zero bias, for every Linear and Conv2d."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight, gain=nn.init.calculate_gain("relu"))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ConvELU(nn.ELU):
    """ELU after a convolution. When no gradient is recorded (the target encoder's forward over B*H frame
    stacks, acting) it overwrites the convolution's output: the same values, one less image-sized buffer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha, inplace=not torch.is_grad_enabled())


class PixelTrunk(nn.Module):
    """uint8 stacked frames (B, C, H, W) -> features: s/255 - 0.5, four 3x3 convs (strides 2,2,2,1), ELU."""

    def __init__(self, in_channels: int, image_hw: tuple[int, int]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, stride in enumerate((2, 2, 2, 1)):
            layers += [nn.Conv2d(in_channels if i == 0 else 32, 32, 3, stride=stride), ConvELU()]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            self.out_dim = self.convs(torch.zeros(1, in_channels, *image_hw)).shape[1]  # 1568 for 84x84

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # Batches go channels-last (B, H, W, C in memory; the shape stays (B, C, H, W)): the convolution kernels run
        # 1.5-3x faster on it (benchmarks/README.md); reordering the uint8 frames costs a quarter of a float copy.
        # One frame stack (acting) stays NCHW, where the reorder does not pay. Same math either way; the kernels
        # sum in another order, so the two layouts differ at float32 rounding.
        # One float copy (keeping the layout), normalised in place: the values of `obs.float() / 255.0 - 0.5`.
        frames = obs.contiguous(memory_format=torch.channels_last) if obs.shape[0] > 1 else obs
        return self.convs(frames.to(torch.float32, copy=True).div_(255.0).sub_(0.5))


class Encoder(nn.Module):
    """State encoder f (obs -> z_s), state-action encoder g ((z_s, a) -> z_sa) and linear MDP predictor m."""

    def __init__(self, obs_shape: tuple[int, ...], pixels: bool, action_dim: int, config: MRQConfig):
        super().__init__()
        c = config
        self.pixels = pixels
        if pixels:
            self.pixel_trunk = PixelTrunk(obs_shape[0], (obs_shape[1], obs_shape[2]))
            self.zs_head = nn.Linear(self.pixel_trunk.out_dim, c.zs_dim)
        else:
            self.zs_mlp = MLP(obs_shape[0], c.zs_dim, c.enc_hdim, nn.ELU)
        self.zs_norm = _layer_norm(c.zs_dim)
        self.za = nn.Linear(action_dim, c.za_dim)
        self.zsa = MLP(c.zs_dim + c.za_dim, c.zsa_dim, c.enc_hdim, nn.ELU)
        self.model = nn.Linear(c.zsa_dim, 1 + c.zs_dim + c.num_bins)
        self.zs_dim = c.zs_dim
        self.apply(init_weights)

    def state(self, obs: torch.Tensor) -> torch.Tensor:
        """f: (B, *obs_shape) -> z_s (B, zs_dim)."""
        x = self.zs_head(self.pixel_trunk(obs)) if self.pixels else self.zs_mlp(obs)
        return F.elu(self.zs_norm(x))

    def state_action(self, zs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """g: z_s (B, zs_dim), action (B, action_dim) in [-1, 1] or one-hot -> z_sa (B, zsa_dim)."""
        za = F.elu(self.za(action))
        return self.zsa(torch.cat([zs, za], dim=1))

    def predict(self, zsa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """m: z_sa -> (termination (B,), next z_s (B, zs_dim), reward logits (B, num_bins))."""
        out = self.model(zsa)
        return out[:, 0], out[:, 1 : 1 + self.zs_dim], out[:, 1 + self.zs_dim :]


class Critic(nn.Module):
    def __init__(self, zsa_dim: int, hdim: int):
        super().__init__()
        self.trunk = MLP(zsa_dim, hdim, hdim, nn.ELU)
        self.norm = _layer_norm(hdim)
        self.head = nn.Linear(hdim, 1)

    def forward(self, zsa: torch.Tensor) -> torch.Tensor:
        return self.head(F.elu(self.norm(self.trunk(zsa))))


class Value(nn.Module):
    """Two critics on z_sa: (B, zsa_dim) -> (B, 2)."""

    def __init__(self, config: MRQConfig):
        super().__init__()
        self.q1 = Critic(config.zsa_dim, config.value_hdim)
        self.q2 = Critic(config.zsa_dim, config.value_hdim)
        self.apply(init_weights)

    def forward(self, zsa: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q1(zsa), self.q2(zsa)], dim=1)


class Policy(nn.Module):
    """pi: z_s -> (action, pre-activation). Continuous: tanh(pre); discrete: soft Gumbel-softmax sample."""

    def __init__(self, action_dim: int, discrete: bool, config: MRQConfig):
        super().__init__()
        self.net = MLP(config.zs_dim, action_dim, config.policy_hdim, nn.ReLU)
        self.discrete = discrete
        self.gumbel_tau = config.gumbel_tau
        self.apply(init_weights)

    def forward(self, zs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = self.net(zs).float()  # float32 whatever the compute precision: the Gumbel noise and tanh need it
        action = F.gumbel_softmax(pre, tau=self.gumbel_tau) if self.discrete else torch.tanh(pre)
        return action, pre


class MRQNetworks(nn.Module):
    """The three networks acting and learning need, named by module: `encoder.*`, `value.*`, `policy.*`."""

    def __init__(self, obs_shape: tuple[int, ...], pixels: bool, action_dim: int, discrete: bool, config: MRQConfig):
        super().__init__()
        self.encoder = Encoder(obs_shape, pixels, action_dim, config)
        self.value = Value(config)
        self.policy = Policy(action_dim, discrete, config)
