"""Whole state dicts under FSDP: gathered from the shards for checkpoints and evaluation, and an optimizer
state put back into the shards on resume. Unsharded runs pass their states through unchanged."""

from __future__ import annotations

import torch
from torch import nn


def full_states(objective: nn.Module, optimizer: torch.optim.Optimizer, sharded: bool) -> tuple[dict | None, dict]:
    """(the objective's full state dict, or None when unsharded; the optimizer's state). Collective under
    FSDP; the full states land on the main rank only (cpu_offload)."""
    if not sharded:
        return None, optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model = get_model_state_dict(objective, options=options)
    return model, get_optimizer_state_dict(objective, optimizer, options=options)


def load_optimizer(objective: nn.Module, optimizer: torch.optim.Optimizer, state: dict, sharded: bool) -> None:
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(objective, optimizer, state, options=StateDictOptions(full_state_dict=True))
