"""Rewards and advantages on hand-computed examples (and their docstring examples)."""

from __future__ import annotations

import doctest

import torch
from echogen_training import rewards
from echogen_training.rewards import clipped_surrogate, group_advantages, k3_kl, layout_reward
from torch.testing import assert_close

from echogen_ros.model import metrics


def test_docstring_examples() -> None:
    for module in (rewards, metrics):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0


def test_layout_reward_by_hand() -> None:
    target = [(0.0, 0.0, 0.4, 0.4), (0.5, 0.5, 1.0, 1.0)]
    predicted = [(0.0, 0.0, 0.4, 0.4), (0.5, 0.5, 0.75, 1.0)]  # second: IoU 0.5, L1 0.25 on one coordinate
    expected_iou = (1.0 + 0.5) / 2
    expected_l1 = 0.25 / 8
    assert abs(layout_reward(target, predicted, l1_weight=2.0) - (expected_iou - 2.0 * expected_l1)) < 1e-12
    assert layout_reward(target, predicted[:1]) == 0.0  # unparseable: wrong count
    assert layout_reward([], []) == 0.0


def test_group_advantages_standardise_within_groups() -> None:
    r = torch.tensor([0.0, 1.0, 2.0, 5.0, 5.0, 5.0])
    a = group_advantages(r, 3)
    assert_close(a[:3], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-3, rtol=0)
    assert_close(a[3:], torch.zeros(3))


def test_k3_is_nonnegative_and_zero_at_equality() -> None:
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -1.0, -0.5])
    kl = k3_kl(logp, ref)
    assert (kl >= 0).all() and kl[2] == 0
    assert_close(kl[0], torch.tensor(-0.5).exp() + 0.5 - 1)


def test_clipped_surrogate_clips_both_ways() -> None:
    old = torch.zeros(1, 2)
    logp = torch.tensor([[1.0, -1.0]])  # ratios e and 1/e
    positive = clipped_surrogate(logp, old, torch.tensor([[1.0]]), 0.2)
    negative = clipped_surrogate(logp, old, torch.tensor([[-1.0]]), 0.2)
    assert_close(positive, torch.tensor([[1.2, torch.tensor(-1.0).exp().item()]]))
    assert_close(negative, torch.tensor([[-torch.tensor(1.0).exp().item(), -0.8]]))


def test_detail_weights_favour_small_objects() -> None:
    from echogen_training.stages.vq import detail_weights

    image = torch.zeros(1, 3, 32, 32)
    image[:, :, 10:13, 10:13] = 1.0  # a small bright object on a flat table
    weights = detail_weights(image, 4.0)
    assert_close(weights.mean(), torch.tensor(1.0))
    assert weights[0, 0, 11, 11] > 3 * weights[0, 0, 28, 28]
    assert torch.equal(detail_weights(image, 0.0), torch.ones(1, 1, 32, 32))


def test_edge_error_pays_for_a_softened_edge_not_for_flat_table() -> None:
    from echogen_training.stages.vq import edge_error

    frame = torch.zeros(1, 3, 8, 8)
    frame[:, :, 2:6, 2:6] = 1.0  # a sharp square block
    assert edge_error(frame, frame) == 0
    assert edge_error(frame + 0.5, frame) == 0  # a uniform shift has the frame's edges
    soft = frame.clone()
    soft[:, :, 2:6, 1] = soft[:, :, 2:6, 6] = 0.5  # the same block with its left/right edges spread over 2 px
    # x: per row of the block the frame steps +1, -1 and the soft one +.5, +.5, -.5, -.5: |error| 4 × .5;
    # y: each spread column steps +.5 and -.5 where the frame's column is flat: 2 × .5 per column
    x_error, y_error = 4 * (4 * 0.5), 2 * (2 * 0.5)  # 4 block rows, 2 spread columns
    expected = torch.tensor(3 * (x_error + y_error) / (3 * 8 * 7))  # 3 channels, over 8 × 7 differences each way
    assert_close(edge_error(soft, frame), expected)
    assert edge_error(soft, frame) > 0 and (soft - frame).abs().mean() < edge_error(soft, frame)


def test_grpo_loss_by_hand() -> None:
    from echogen_training.rewards import grpo_loss

    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]])
    old = torch.tensor([[-1.0, -2.5], [-0.5, -0.2]])
    ref = torch.tensor([[-1.2, -2.0], [-0.5, -0.5]])
    adv = torch.tensor([1.0, -1.0])
    # ratios: [1, e^0.5] and [1, e^-0.3]; clip 0.2 → [1, 1.2] (A=+1) and [-1, -max(e^-0.3, 0.8)] (A=−1)
    surrogate = torch.tensor([[1.0, 1.2], [-1.0, -max(float(torch.tensor(-0.3).exp()), 0.8)]])
    kl = torch.tensor([[float(torch.tensor(-0.2).exp()) + 0.2 - 1, 0.0], [0.0, 0.0]])
    loss, s, k = grpo_loss(logp, old, ref, adv, clip=0.2, kl_beta=0.1)
    assert_close(s, surrogate.mean())
    assert_close(k, kl.mean())
    assert_close(loss, (-surrogate + 0.1 * kl).mean())


def test_the_clip_binds_for_either_sign_of_advantage_and_stops_the_gradient() -> None:
    """Ratios ≠ 1 (a second epoch on a group): ρ = e^0.5 with A = +2 and ρ = e^−0.5 with A = −1 are clipped
    to 1.2 and 0.8, their tokens get no gradient; ρ = e^0.1 (A = +2) and ρ = e^0.5 (A = −1) are not."""
    from echogen_training.rewards import clip_stats, grpo_loss

    old = torch.tensor([[-1.0, -1.0], [-2.0, -2.0]])
    logp = torch.tensor([[-0.5, -0.9], [-2.5, -1.5]], requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    loss, surrogate, _ = grpo_loss(logp, old, old, adv, clip=0.2, kl_beta=0.0)
    e = torch.tensor([0.1, 0.5]).exp().tolist()
    per_token = [[1.2 * 2.0, e[0] * 2.0], [0.8 * -1.0, e[1] * -1.0]]  # min(ρA, clip(ρ)A) by hand
    assert_close(surrogate, torch.tensor(per_token).mean())
    assert_close(loss, -torch.tensor(per_token).mean())
    loss.backward()
    # d(−mean ρA)/d logp = −ρA/4 where unclipped, 0 where the clip binds
    assert_close(logp.grad, torch.tensor([[0.0, -e[0] * 2.0 / 4], [0.0, e[1] / 4]]))
    clipped, ratio = clip_stats(logp.detach(), old, adv[:, None], 0.2)
    assert clipped.item() == 0.5
    assert_close(ratio, torch.tensor([0.5, 0.1, -0.5, 0.5]).exp().mean())


def test_guided_logprobs_by_hand() -> None:
    """softmax((u + g·(c − u)) / T) on two tokens of a three-code book, g = 3, T = 0.5."""
    from echogen_training.rewards import guided_logprobs

    cond = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]]])
    uncond = torch.tensor([[[0.5, 0.5, 0.5], [1.0, 0.0, -1.0]]])
    # guided = u + 3(c − u): (2, −1, 0.5) and (−2, 0, 2); divided by T = 0.5: (4, −2, 1) and (−4, 0, 4)
    tokens = torch.tensor([[0, 2]])
    first = 4 - torch.tensor([4.0, -2.0, 1.0]).exp().sum().log()
    second = 4 - torch.tensor([-4.0, 0.0, 4.0]).exp().sum().log()
    assert_close(guided_logprobs(cond, uncond, tokens, 3.0, 0.5), torch.stack([first, second])[None])
    # guidance 1 at temperature 1 is the conditional distribution itself
    assert_close(guided_logprobs(cond, uncond, tokens, 1.0, 1.0), cond.log_softmax(-1)[0, [0, 1], [0, 2]][None])
