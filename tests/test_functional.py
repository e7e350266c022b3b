"""MR.Q's numeric pieces (mrq_agents.functional) against values worked out by hand."""

import math

import pytest
import torch

from mrq_agents.functional import (
    draw_shifts,
    encoder_loss,
    lap_priority,
    masked_multistep_return,
    prefix_mask,
    random_shift,
    sample_proportional,
    twohot_bins,
    twohot_cross_entropy,
    twohot_decode,
    twohot_encode,
)

E = math.e
# Small two-hot config: bins = symexp(linspace(-2, 2, 5)) = symexp([-2, -1, 0, 1, 2])
#                             = [-(e^2 - 1), -(e - 1), 0, e - 1, e^2 - 1]
SMALL_BINS = [-(E**2 - 1), -(E - 1), 0.0, E - 1, E**2 - 1]


def small_bins():
    return twohot_bins(5, -2.0, 2.0)


def t(values):
    return torch.tensor(values, dtype=torch.float32)


# ------------------------------------------------------------------ two-hot
def test_paper_bins_are_symexp_of_linspace():
    bins = twohot_bins(65, -10.0, 10.0)
    assert bins.shape == (65,)
    # linspace(-10, 10, 65) has step 20/64 = 0.3125; index 32 is 0 -> symexp(0) = 0.
    assert bins[32].item() == 0.0
    # symexp is odd and the grid symmetric: bins[k] == -bins[64 - k].
    assert torch.equal(bins, -bins.flip(0))
    # Ends: +-symexp(10) = +-(e^10 - 1) = +-22025.4658
    assert bins[-1].item() == pytest.approx(math.exp(10) - 1, rel=1e-6)
    assert bins[0].item() == pytest.approx(-(math.exp(10) - 1), rel=1e-6)
    # bins[33] = symexp(0.3125) = e^0.3125 - 1 = 0.366838...
    assert bins[33].item() == pytest.approx(math.exp(0.3125) - 1, rel=1e-6)
    assert torch.all(bins[1:] > bins[:-1])


def test_small_bins_by_hand():
    assert small_bins().tolist() == pytest.approx(SMALL_BINS, rel=1e-6)


@pytest.mark.parametrize("index", range(5))
def test_twohot_of_a_bin_value_is_one_hot(index):
    target = twohot_encode(t([SMALL_BINS[index]]), small_bins())
    expected = [0.0] * 5
    expected[index] = 1.0
    assert target.shape == (1, 5)
    assert target[0].tolist() == pytest.approx(expected, abs=1e-6)


def test_twohot_between_bins_gives_linear_weights():
    x = [
        0.5 * (E - 1),  # halfway between bin 2 (0) and bin 3 (e-1): 0.5 / 0.5
        -0.5 * (E - 1),  # halfway between bin 1 (-(e-1)) and bin 2 (0): 0.5 / 0.5
        (E - 1) + 0.25 * ((E**2 - 1) - (E - 1)),  # a quarter of the way from bin 3 to bin 4: 0.75 / 0.25
        0.1 * (E - 1),  # a tenth of the way from bin 2 to bin 3: 0.9 / 0.1
    ]
    expected = [
        [0, 0, 0.5, 0.5, 0],
        [0, 0.5, 0.5, 0, 0],
        [0, 0, 0, 0.75, 0.25],
        [0, 0, 0.9, 0.1, 0],
    ]
    target = twohot_encode(t(x), small_bins())
    for row, exp in zip(target.tolist(), expected):
        assert row == pytest.approx(exp, abs=1e-5)


def test_twohot_accepts_column_input():
    # (B, 1) input gives the same (B, bins) as (B,): 0.5(e-1) -> 0.5 on bins 2 and 3
    target = twohot_encode(t([[0.5 * (E - 1)]]), small_bins())
    assert target.shape == (1, 5)
    assert target[0].tolist() == pytest.approx([0, 0, 0.5, 0.5, 0], abs=1e-5)


def test_twohot_beyond_the_range_goes_to_the_end_bin():
    target = twohot_encode(t([100.0, -100.0, E**2, -(E**2)]), small_bins())
    # e^2 > e^2 - 1 (the top bin) and -e^2 < -(e^2 - 1): both also outside the range.
    assert target.tolist() == [[0, 0, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]]


def test_twohot_rows_sum_to_one_and_are_non_negative():
    bins = twohot_bins(65, -10.0, 10.0)
    x = t([-1e6, -3000.0, -7.3, -0.01, 0.0, 0.2, 1.0, 55.5, 21000.0, 1e6])
    target = twohot_encode(x, bins)
    assert target.shape == (10, 65)
    assert torch.all(target >= 0)
    assert target.sum(1).tolist() == pytest.approx([1.0] * 10, abs=1e-6)
    assert torch.all((target > 0).sum(1) <= 2)


def test_twohot_decode_of_log_target_recovers_the_value():
    bins = twohot_bins(65, -10.0, 10.0)
    x = [-250.0, -3.7, -0.5, 0.0, 0.42, 3.7, 123.0]
    # softmax(log(target + tiny)) ~= target, so the expectation over bins is the encoded value.
    logits = torch.log(twohot_encode(t(x), bins).double() + 1e-30)
    decoded = twohot_decode(logits, bins.double())
    assert decoded.shape == (7, 1)
    assert decoded[:, 0].tolist() == pytest.approx(x, abs=1e-4)


def test_twohot_decode_by_hand():
    # Uniform logits over the small bins: mean of a symmetric grid = 0.
    assert twohot_decode(torch.zeros(1, 5), small_bins()).item() == pytest.approx(0.0, abs=1e-6)
    # softmax = [0, 0, 0, 0.25, 0.75] (logits log p): 0.25(e-1) + 0.75(e^2-1)
    logits = torch.log(t([[1e-30, 1e-30, 1e-30, 0.25, 0.75]]))
    assert twohot_decode(logits, small_bins()).item() == pytest.approx(0.25 * (E - 1) + 0.75 * (E**2 - 1), rel=1e-5)


def test_twohot_cross_entropy_by_hand():
    bins = small_bins()
    # Normalised logits: log_softmax(log p) = log p, p = [0.1, 0.2, 0.3, 0.25, 0.15].
    p = [0.1, 0.2, 0.3, 0.25, 0.15]
    logits = torch.cat([torch.log(t([p, p])), t([[1, 2, 3, 4, 5], [0, 0, 0, 0, 0]])])
    x = t([0.5 * (E - 1), E - 1, E - 1, 12.0])
    ce = twohot_cross_entropy(logits, x, bins)
    lse = math.log(sum(math.exp(k) for k in (1, 2, 3, 4, 5)))  # log-sum-exp of [1..5]
    expected = [
        -(0.5 * math.log(0.3) + 0.5 * math.log(0.25)),  # half on bins 2, 3
        -math.log(0.25),  # one-hot on bin 3
        -(4 - lse),  # one-hot on bin 3, logit 4
        math.log(5),  # uniform logits: -log(1/5) whatever the target
    ]
    assert ce.shape == (4,)
    assert ce.tolist() == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ masks and returns
def test_prefix_mask_by_hand():
    not_done = t(
        [
            [1, 1, 1],
            [0, 1, 1],
            [1, 0, 1],
            [1, 1, 0],
            [0, 0, 0],
            [1, 0, 0],
        ]
    )
    # m_t = prod_{j<t} d_j: m_0 = 1 always; m_1 = d_0; m_2 = d_0 d_1
    expected = [
        [1, 1, 1],
        [1, 0, 0],
        [1, 1, 0],
        [1, 1, 1],
        [1, 0, 0],
        [1, 1, 0],
    ]
    assert prefix_mask(not_done).tolist() == expected


def test_prefix_mask_horizon_one_is_all_ones():
    assert prefix_mask(t([[0], [1]])).tolist() == [[1], [1]]


def test_masked_multistep_return_by_hand():
    gamma = 0.5
    rewards = t(
        [
            [1, 2, 4],  # no termination
            [1, 100, 1000],  # termination at step 0
            [1, 2, 1000],  # termination at step 1
            [1, 2, 4],  # termination at step 2
            [1, 2, 4],  # truncation at step 1: d stays 1
        ]
    )
    not_done = t(
        [
            [1, 1, 1],
            [0, 1, 1],
            [1, 0, 1],
            [1, 1, 0],
            [1, 1, 1],
        ]
    )
    returns, bootstrap = masked_multistep_return(rewards, not_done, gamma)
    assert returns.shape == (5, 1) and bootstrap.shape == (5, 1)
    expected_returns = [
        1 + 0.5 * 2 + 0.25 * 4,  # = 3
        1.0,  # terminating step keeps its reward, nothing after it
        1 + 0.5 * 2,  # = 2: step 1 terminates and keeps its reward; step 2 is dropped
        1 + 0.5 * 2 + 0.25 * 4,  # = 3
        1 + 0.5 * 2 + 0.25 * 4,  # = 3
    ]
    assert returns[:, 0].tolist() == pytest.approx(expected_returns)
    assert bootstrap[:, 0].tolist() == [1, 0, 0, 0, 1]


def test_masked_multistep_return_with_paper_discount():
    # gamma = 0.99, H = 3, rewards [2, -1, 3], no termination: 2 - 0.99 + 0.9801 * 3 = 3.9503
    returns, bootstrap = masked_multistep_return(t([[2, -1, 3]]), t([[1, 1, 1]]), 0.99)
    assert returns.item() == pytest.approx(3.9503, rel=1e-6)
    assert bootstrap.item() == 1.0


# ------------------------------------------------------------------ encoder loss
def _loss_inputs(horizon=3, batch=2, z=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        pred_zs=torch.randn(batch, horizon, z, generator=g),
        target_zs=torch.randn(batch, horizon, z, generator=g),
        reward_logits=torch.randn(batch, horizon, 5, generator=g),
        rewards=torch.randn(batch, horizon, generator=g),
        done_pred=torch.rand(batch, horizon, generator=g),
    )


def _call_loss(inputs, not_done, use_done=True):
    return encoder_loss(
        inputs["pred_zs"],
        inputs["target_zs"],
        inputs["reward_logits"],
        inputs["rewards"],
        inputs["done_pred"],
        not_done,
        small_bins(),
        1.0,
        0.1,
        0.1,
        use_done,
    )


def test_encoder_loss_per_term_by_hand():
    # B = 1, H = 2, Z = 2.
    pred_zs = t([[[1, 2], [0, 0]]])
    target_zs = t([[[0, 0], [1, 1]]])
    reward_logits = torch.zeros(1, 2, 5)
    rewards = t([[0.3, -5.0]])
    done_pred = t([[0.5, 0.2]])
    not_done = t([[1, 0]])  # step 1 terminates: still counted (mask = d_0 = 1)
    total, parts = encoder_loss(
        pred_zs, target_zs, reward_logits, rewards, done_pred, not_done, small_bins(), 1.0, 0.1, 0.1, True
    )
    # dynamics: step 0 mean(1^2, 2^2) = 2.5; step 1 mean(1, 1) = 1  -> 3.5
    assert parts["dynamics_loss"].item() == pytest.approx(3.5)
    # reward: zero logits -> CE = log 5 at each step -> 2 log 5 = 3.2189
    assert parts["reward_loss"].item() == pytest.approx(2 * math.log(5), rel=1e-6)
    # termination: targets 1 - d = [0, 1]: (0.5 - 0)^2 + (0.2 - 1)^2 = 0.25 + 0.64 = 0.89
    assert parts["termination_loss"].item() == pytest.approx(0.89, rel=1e-6)
    # total = 1.0 * 3.5 + 0.1 * 2 log 5 + 0.1 * 0.89 = 3.5 + 0.32189 + 0.089 = 3.91089
    assert total.item() == pytest.approx(3.5 + 0.2 * math.log(5) + 0.089, rel=1e-6)


def test_encoder_loss_averages_over_batch_and_sums_over_steps():
    # Sample 0 as above; sample 1 has zero dynamics and termination error.
    pred_zs = t([[[1, 2], [0, 0]], [[3, 3], [4, 4]]])
    target_zs = t([[[0, 0], [1, 1]], [[3, 3], [4, 4]]])
    reward_logits = torch.zeros(2, 2, 5)
    rewards = t([[0.3, -5.0], [1.0, 2.0]])
    done_pred = t([[0.5, 0.2], [0.0, 0.0]])
    not_done = t([[1, 0], [1, 1]])
    total, parts = encoder_loss(
        pred_zs, target_zs, reward_logits, rewards, done_pred, not_done, small_bins(), 2.0, 0.5, 1.0, True
    )
    # dynamics (3.5 + 0) / 2 = 1.75; reward (2 log 5 + 2 log 5) / 2 = 2 log 5; termination (0.89 + 0) / 2 = 0.445
    assert parts["dynamics_loss"].item() == pytest.approx(1.75)
    assert parts["reward_loss"].item() == pytest.approx(2 * math.log(5), rel=1e-6)
    assert parts["termination_loss"].item() == pytest.approx(0.445, rel=1e-6)
    # weights 2.0 / 0.5 / 1.0: 3.5 + log 5 + 0.445
    assert total.item() == pytest.approx(3.5 + math.log(5) + 0.445, rel=1e-6)


def test_encoder_loss_without_termination_term():
    pred_zs = t([[[1, 2], [0, 0]]])
    target_zs = t([[[0, 0], [1, 1]]])
    total, parts = encoder_loss(
        pred_zs,
        target_zs,
        torch.zeros(1, 2, 5),
        t([[0.3, -5.0]]),
        t([[0.5, 0.2]]),
        t([[1, 0]]),
        small_bins(),
        1.0,
        0.1,
        0.1,
        False,
    )
    # 3.5 + 0.1 * 2 log 5, no 0.1 * 0.89
    assert total.item() == pytest.approx(3.5 + 0.2 * math.log(5), rel=1e-6)
    # The part is still reported (unweighted) for logging.
    assert parts["termination_loss"].item() == pytest.approx(0.89, rel=1e-6)


def test_encoder_loss_masks_steps_after_a_termination():
    not_done = t([[1, 0, 1], [1, 0, 1]])  # termination at step 1 of H = 3 in both samples
    base = _loss_inputs()
    total, parts = _call_loss(base, not_done)

    # Anything at step 2 (after the termination) does not count.
    for key in base:
        changed = {k: v.clone() for k, v in base.items()}
        changed[key][:, 2] += 7.0
        other_total, other_parts = _call_loss(changed, not_done)
        assert other_total.item() == pytest.approx(total.item(), rel=1e-6), key
        for name in parts:
            assert other_parts[name].item() == pytest.approx(parts[name].item(), rel=1e-6), (key, name)

    # The terminating step itself (step 1) does count, for every term.
    for key in ("pred_zs", "target_zs", "reward_logits", "done_pred"):
        changed = {k: v.clone() for k, v in base.items()}
        changed[key][:, 1] += torch.arange(1.0, 1.0 + changed[key][:, 1].numel()).reshape(changed[key][:, 1].shape)
        other_total, _ = _call_loss(changed, not_done)
        assert other_total.item() != pytest.approx(total.item(), rel=1e-4), key
    changed = {k: v.clone() for k, v in base.items()}
    changed["rewards"][:, 1] = 4.0  # a different two-hot target at step 1
    assert _call_loss(changed, not_done)[0].item() != pytest.approx(total.item(), rel=1e-4)


def test_encoder_loss_masked_case_by_hand():
    # B = 1, H = 3, Z = 1, termination at step 0: only step 0 counts.
    pred_zs = t([[[2], [50], [60]]])
    target_zs = t([[[0], [0], [0]]])
    done_pred = t([[0.4, 9.0, 9.0]])
    total, parts = encoder_loss(
        pred_zs,
        target_zs,
        torch.zeros(1, 3, 5),
        t([[0.0, 1.0, 2.0]]),
        done_pred,
        t([[0, 0, 0]]),
        small_bins(),
        1.0,
        0.1,
        0.1,
        True,
    )
    # dynamics 2^2 = 4; reward log 5; termination (0.4 - 1)^2 = 0.36
    assert parts["dynamics_loss"].item() == pytest.approx(4.0)
    assert parts["reward_loss"].item() == pytest.approx(math.log(5), rel=1e-6)
    assert parts["termination_loss"].item() == pytest.approx(0.36, rel=1e-6)
    assert total.item() == pytest.approx(4.0 + 0.1 * math.log(5) + 0.036, rel=1e-6)


# ------------------------------------------------------------------ LAP priority
def test_lap_priority_by_hand():
    td = t([[-3, 0.5], [0.2, 0.1]])
    # max |delta| per row: [3, 0.2]; clamp below at 1: [3, 1]; ** 0.4: [3 ** 0.4, 1]
    priority = lap_priority(td, min_priority=1.0, alpha=0.4)
    assert priority.shape == (2,)
    assert priority.tolist() == pytest.approx([3**0.4, 1.0], rel=1e-6)


def test_lap_priority_uses_the_larger_critic_error():
    # rows: max(|1.5|, |-2.5|) = 2.5 -> 2.5 ** 0.5; max(|0.3|, |-0.4|) = 0.4, above the clamp 0.25 -> 0.4 ** 0.5
    priority = lap_priority(t([[1.5, -2.5], [0.3, -0.4]]), min_priority=0.25, alpha=0.5)
    assert priority.tolist() == pytest.approx([2.5**0.5, 0.4**0.5], rel=1e-6)


# ------------------------------------------------------------------ random shift
def _shifted_by_hand(image, dy, dx):
    """out[c, i, j] = image[c, clamp(i + dy), clamp(j + dx)]: a crop of the replicate-padded image."""
    _, h, w = image.shape
    rows = [min(max(i + dy, 0), h - 1) for i in range(h)]
    cols = [min(max(j + dx, 0), w - 1) for j in range(w)]
    return image[:, rows][:, :, cols]


def _find_shift(out, image, pad):
    matches = [
        (dy, dx)
        for dy in range(-pad, pad + 1)
        for dx in range(-pad, pad + 1)
        if torch.equal(out, _shifted_by_hand(image, dy, dx))
    ]
    return matches


def test_random_shift_outputs_shifted_crops_of_the_padded_input():
    torch.manual_seed(0)
    batch, channels, size = 64, 2, 12
    images = torch.arange(batch * channels * size * size, dtype=torch.float32).reshape(batch, channels, size, size)
    out = random_shift(images, draw_shifts(batch, "cpu", pad=4), pad=4)
    assert out.shape == images.shape and out.dtype == images.dtype
    shifts = set()
    for b in range(batch):
        matches = _find_shift(out[b], images[b], 4)
        assert len(matches) == 1, f"image {b} is not a shifted crop within [-4, 4]"
        shifts.add(matches[0])
    # 64 draws over 81 shifts: many different ones, independent per image.
    assert len(shifts) > 20


def test_random_shift_reaches_the_extreme_offsets():
    torch.manual_seed(1)
    images = torch.arange(400 * 36, dtype=torch.float32).reshape(400, 1, 6, 6)
    out = random_shift(images, draw_shifts(400, "cpu", pad=2), pad=2)
    dys, dxs = set(), set()
    for b in range(400):
        ((dy, dx),) = _find_shift(out[b], images[b], 2)
        dys.add(dy)
        dxs.add(dx)
    assert dys == {-2, -1, 0, 1, 2} and dxs == {-2, -1, 0, 1, 2}


def test_random_shift_pad_zero_is_identity():
    images = torch.rand(3, 4, 7, 5)
    assert torch.equal(random_shift(images, draw_shifts(3, "cpu", pad=0), pad=0), images)


def test_random_shift_applies_the_given_offsets():
    # shifts are offsets into the padded image: (pad + dy, pad + dx); (0, 4) with pad 2 is dy = -2, dx = +2
    images = torch.arange(2 * 36, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = random_shift(images, torch.tensor([[0, 4], [2, 2]]), pad=2)
    assert torch.equal(out[0], _shifted_by_hand(images[0], -2, 2))
    assert torch.equal(out[1], images[1])  # (pad, pad): no shift


# ------------------------------------------------------------------ proportional sampling
def test_sample_proportional_inverts_the_cdf():
    # weights [0, 2, 0, 1, 1]: cdf [0, 2, 2, 3, 4]; u * 4 = [0, 1.99, 2, 2.5, 3, 3.96]
    # -> first cdf entry > x: [1, 1, 3, 3, 4, 4] (index 0 and 2 own empty intervals)
    weights = t([0, 2, 0, 1, 1])
    uniforms = t([0.0, 0.4975, 0.5, 0.625, 0.75, 0.99])
    assert sample_proportional(weights, uniforms).tolist() == [1, 1, 3, 3, 4, 4]


def test_sample_proportional_never_returns_past_the_end():
    assert sample_proportional(t([1, 1, 0]), t([0.9999999])).tolist() == [1]
    assert sample_proportional(t([1, 1]), torch.tensor([1.0 - 2**-53], dtype=torch.float64)).tolist() == [1]


def test_sample_proportional_frequencies_match_the_weights():
    torch.manual_seed(0)
    weights = t([1, 0, 3, 6])
    counts = torch.bincount(sample_proportional(weights, torch.rand(200_000)), minlength=4).double() / 200_000
    assert counts.tolist() == pytest.approx([0.1, 0.0, 0.3, 0.6], abs=0.005)
