"""Small pure numeric functions of MR.Q (docs/algorithm.md), each unit-tested against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def twohot_bins(num_bins: int, lower: float, upper: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bin centres `symexp(linspace(lower, upper, num_bins))`, shape (num_bins,)."""
    return symexp(torch.linspace(lower, upper, num_bins, device=device))


def twohot_encode(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot targets, (B,) or (B, 1) -> (B, num_bins): weight on the two neighbouring bins, linear in x.

    Values outside the bin range put all their weight on the nearest end bin.
    """
    x = x.reshape(-1, 1)
    upper_idx = torch.searchsorted(bins, x).clamp(1, bins.numel() - 1)  # (B, 1)
    lower_idx = upper_idx - 1
    lower, upper = bins[lower_idx], bins[upper_idx]
    upper_weight = ((x - lower) / (upper - lower)).clamp(0.0, 1.0)
    target = torch.zeros(x.shape[0], bins.numel(), device=x.device, dtype=bins.dtype)
    target.scatter_(1, lower_idx, 1.0 - upper_weight)
    target.scatter_add_(1, upper_idx, upper_weight)
    return target


def twohot_decode(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Expected value under softmax(logits): (B, num_bins) -> (B, 1)."""
    return F.softmax(logits, dim=-1) @ bins.reshape(-1, 1)


def twohot_cross_entropy(logits: torch.Tensor, x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of softmax(logits) against twohot(x): (B, num_bins), (B,) -> (B,)."""
    return -(twohot_encode(x, bins) * F.log_softmax(logits, dim=-1)).sum(-1)


def prefix_mask(not_done: torch.Tensor) -> torch.Tensor:
    """`m_t = prod_{j<t} d_j`: (B, H) -> (B, H). A step counts unless an earlier step terminated."""
    ones = torch.ones_like(not_done[:, :1])
    return torch.cumprod(torch.cat([ones, not_done[:, :-1]], dim=1), dim=1)


def masked_multistep_return(
    rewards: torch.Tensor, not_done: torch.Tensor, discount: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`R = sum_t gamma^t r_t prod_{j<t} d_j` and bootstrap factor `D = prod_t d_t`; (B, H) -> (B, 1), (B, 1).

    The terminating step keeps its reward; nothing after a termination leaks in. A truncation is not a
    termination (its d is 1), so it does not zero D.
    """
    horizon = rewards.shape[1]
    powers = discount ** torch.arange(horizon, device=rewards.device, dtype=rewards.dtype)
    returns = (rewards * prefix_mask(not_done) * powers).sum(1, keepdim=True)
    return returns, not_done.prod(1, keepdim=True)


def encoder_loss(
    pred_zs: torch.Tensor,
    target_zs: torch.Tensor,
    reward_logits: torch.Tensor,
    rewards: torch.Tensor,
    done_pred: torch.Tensor,
    not_done: torch.Tensor,
    bins: torch.Tensor,
    dyn_weight: float,
    reward_weight: float,
    done_weight: float,
    use_done: float | torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MR.Q's model loss over a rollout of H steps, every term masked by `prod_{j<t} d_j`.

    Shapes: pred_zs/target_zs (B, H, Z), reward_logits (B, H, bins), rewards/done_pred/not_done (B, H).
    `use_done`: 1 or 0 (a number or a 0-d tensor): the termination term counts once the buffer holds a termination.
    Returns the total (summed over steps, averaged over the batch) and its unweighted parts.
    """
    batch, horizon = rewards.shape
    mask = prefix_mask(not_done)
    dyn = (pred_zs - target_zs).pow(2).mean(-1)  # (B, H)
    reward = twohot_cross_entropy(reward_logits.reshape(batch * horizon, -1), rewards.reshape(-1), bins).reshape(
        batch, horizon
    )
    done = (done_pred - (1.0 - not_done)).pow(2)  # (B, H)
    parts = {
        "dynamics_loss": (dyn * mask).mean(0).sum(),
        "reward_loss": (reward * mask).mean(0).sum(),
        "termination_loss": (done * mask).mean(0).sum(),
    }
    total = (
        dyn_weight * parts["dynamics_loss"]
        + reward_weight * parts["reward_loss"]
        + done_weight * parts["termination_loss"] * use_done
    )
    return total, parts


def lap_priority(td_error: torch.Tensor, min_priority: float, alpha: float) -> torch.Tensor:
    """LAP priority `max_i |delta_i|` clamped below at min_priority, to the power alpha: (B, critics) -> (B,)."""
    return td_error.abs().max(dim=1).values.clamp(min=min_priority).pow(alpha)


def draw_shifts(count: int, device: torch.device | str, pad: int = 4) -> torch.Tensor:
    """Random integer offsets for `random_shift`: (count, 2) in [0, 2 * pad] (row, column)."""
    return torch.randint(0, 2 * pad + 1, (count, 2), device=device)


def random_shift(images: torch.Tensor, shifts: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Shift each image by `shifts - pad` pixels (rows, columns) with replicated borders.

    images (B, C, H, W) of any dtype (the learner passes the stored uint8 frames), shifts (B, 2) integers in
    [0, 2 * pad] from `draw_shifts`. Replicate-padding by `pad` and cropping at `shifts` reads source pixel
    `clamp(i + shift - pad, 0, H - 1)`, so that is what is gathered, with no padded copy. The randomness is an
    argument so that the plain and the captured (CUDA graph) update paths can share the same draws.
    """
    batch, _, height, width = images.shape
    rows = (torch.arange(height, device=images.device)[None, :] + shifts[:, :1] - pad).clamp_(0, height - 1)
    cols = (torch.arange(width, device=images.device)[None, :] + shifts[:, 1:] - pad).clamp_(0, width - 1)
    batch_idx = torch.arange(batch, device=images.device)[:, None, None]
    out = images.permute(0, 2, 3, 1)[batch_idx, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def sample_proportional(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Indices drawn with replacement with probability `weights / weights.sum()`, by inverting the CDF.

    weights (N,) non-negative with a positive sum, uniforms (K,) in [0, 1) -> (K,) int64. Index i is chosen when
    `u * total` falls in [cdf[i-1], cdf[i]); zero-weight entries own an empty interval and are never chosen. The
    CDF is accumulated in float64 so that a million priorities keep their share to ~1e-10. No host
    synchronisation, so it runs inside a captured CUDA graph.
    """
    cdf = torch.cumsum(weights.double(), 0)
    index = torch.searchsorted(cdf, uniforms.double() * cdf[-1], right=True)
    return index.clamp_(max=weights.numel() - 1)
