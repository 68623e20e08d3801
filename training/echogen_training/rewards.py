"""Cycle RL rewards and advantages: pure, typed functions (tested directly, examples below)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from echogen_ros.model.generation import guided_logits
from echogen_ros.model.layout import box_iou

Box = Sequence[float]


def layout_reward(targets: Sequence[Box], predicted: Sequence[Box] | None, l1_weight: float = 0.5) -> float:
    """Agreement of an input layout and the layout grounded back from its imagined image.

    reward = mean IoU of matched boxes − l1_weight · mean |coordinate difference|, boxes normalised to
    [0, 1]; an unparseable output (None, or a box count that does not match) scores 0.

    >>> layout_reward([(0.0, 0.0, 0.5, 0.5)], [(0.0, 0.0, 0.5, 0.5)])
    1.0
    >>> round(layout_reward([(0.0, 0.0, 0.5, 0.5)], [(0.25, 0.0, 0.75, 0.5)], l1_weight=0.5), 4)
    0.2708
    >>> layout_reward([(0.0, 0.0, 0.5, 0.5)], None)
    0.0
    """
    if predicted is None or len(predicted) != len(targets) or not targets:
        return 0.0
    ious = [box_iou(t, p) for t, p in zip(targets, predicted)]
    l1 = [abs(a - b) for t, p in zip(targets, predicted) for a, b in zip(t, p)]
    return float(sum(ious) / len(ious) - l1_weight * sum(l1) / len(l1))


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages: each reward standardised within its group of `group_size` samples.

    Rewards are ordered group by group: (r[0..G-1] of layout 0, r[G..2G-1] of layout 1, ...).

    >>> group_advantages(torch.tensor([1.0, 0.0, 2.0, 2.0]), 2).tolist()
    [0.7070..., -0.7070..., 0.0, 0.0]
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    return (centred / (groups.std(dim=1, keepdim=True) + eps)).view(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π‖π_ref) estimate k3 = exp(r) − r − 1 with r = log π_ref − log π (always ≥ 0).

    >>> k3_kl(torch.tensor([-1.0]), torch.tensor([-1.0])).item()
    0.0
    """
    ratio = ref_logp - logp
    return ratio.exp() - ratio - 1.0


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO/GRPO per-token objective to maximise: min(ρA, clip(ρ, 1±ε)A), ρ = exp(logp − old_logp).

    `advantages` broadcast over tokens: (B, 1) against (B, N) log-probs.

    >>> round(clipped_surrogate(torch.tensor([[0.0]]), torch.tensor([[-1.0]]), torch.tensor([[1.0]]), 0.2).item(), 4)
    1.2
    """
    ratio = (logp - old_logp).exp()
    return torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip: float,
    kl_beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GRPO loss over sampled tokens (B, N): −mean(clipped surrogate) + β·mean(k3 KL to the reference).

    Returns (loss, mean surrogate, mean KL); `advantages` is (B,), one per sampled image.

    >>> z = torch.zeros(1, 2)
    >>> [round(v.item(), 4) for v in grpo_loss(z, z, z, torch.tensor([0.5]), 0.2, 0.1)]
    [-0.5, 0.5, 0.0]
    """
    surrogate = clipped_surrogate(logp, old_logp, advantages[:, None], clip)
    kl = k3_kl(logp, ref_logp)
    return (-surrogate + kl_beta * kl).mean(), surrogate.mean(), kl.mean()


def clip_stats(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(share of tokens where the clip binds, mean ratio) for `clipped_surrogate`'s arguments: the clip binds
    where ρ > 1+ε with A > 0 or ρ < 1−ε with A < 0 (there the token's gradient is zero).

    >>> [round(v.item(), 4) for v in clip_stats(torch.tensor([[0.5, 0.0]]), torch.zeros(1, 2), torch.ones(1, 1), 0.2)]
    [0.5, 1.3244]
    """
    ratio = (logp - old_logp).exp()
    binds = ((ratio > 1 + clip) & (advantages > 0)) | ((ratio < 1 - clip) & (advantages < 0))
    return binds.float().mean(), ratio.mean()


def guided_logprobs(
    cond: torch.Tensor, uncond: torch.Tensor, tokens: torch.Tensor, guidance: float, temperature: float
) -> torch.Tensor:
    """Log-probabilities (B, N) of `tokens` under the distribution classifier-free guidance samples them
    from, softmax((u + g·(c − u)) / T), as `generation.generate_image_tokens` draws; `cond` and `uncond` are
    the (B, N, V) logits of the conditional and unconditional prompts.

    >>> c, u = torch.tensor([[[1.0, 0.0]]]), torch.zeros(1, 1, 2)  # guided logits (2, 0), tempered (1, 0)
    >>> round(guided_logprobs(c, u, torch.tensor([[0]]), 2.0, 2.0).item(), 4)  # log(e / (e + 1))
    -0.3133
    """
    logits = guided_logits(cond, uncond, guidance) / temperature
    return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
