"""Process-group set-up under torchrun (gloo on CPU, NCCL on GPU) and DDP / FSDP wrapping."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> Context:
    """Join the torchrun process group when launched by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return Context(0, 1, device)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", timeout=timedelta(minutes=30))
        return Context(dist.get_rank(), world, torch.device("cuda", local))
    dist.init_process_group("gloo", timeout=timedelta(minutes=10))
    return Context(dist.get_rank(), world, torch.device("cpu"))


def wrap(module: nn.Module, context: Context, strategy: str, shard_units: list[nn.Module] = ()) -> nn.Module:
    """DDP, or FSDP2 (`fully_shard` on each of `shard_units` — the transformer layers — then on the root);
    both work with gloo on CPU and NCCL on GPU. FSDP2 shards in place and returns the same module."""
    if context.world == 1:
        return module
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(context.device.type, (context.world,))
        for unit in shard_units:
            fully_shard(unit, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module
    if strategy != "ddp":
        raise ValueError(f"run.distributed must be ddp or fsdp, got {strategy!r}")
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    with warnings.catch_warnings():  # newer torch renames the flag; the old one keeps init-time buffers per rank
        warnings.simplefilter("ignore", FutureWarning)
        # no batch-norm statistics to share; per-rank buffers (VQ code hits) stay per rank
        return nn.parallel.DistributedDataParallel(
            module, device_ids=device_ids, find_unused_parameters=True, broadcast_buffers=False
        )


def average(metrics: dict[str, float], context: Context) -> dict[str, float]:
    """Per-key mean over the ranks that report it (ranks may log different keys in a step)."""
    if context.world == 1:
        return metrics
    gathered: list[dict[str, float]] = [{} for _ in range(context.world)]
    dist.all_gather_object(gathered, metrics)
    keys = dict.fromkeys(k for m in gathered for k in m)
    return {k: sum(m[k] for m in gathered if k in m) / sum(k in m for m in gathered) for k in keys}


def slowest(seconds: float, context: Context) -> float:
    """The largest of the ranks' values (a wall time): decisions taken on it (the time budget's fits and
    stop) come out the same on every rank, so no rank stops a step before the others and leaves them
    waiting in a collective."""
    if context.world == 1:
        return seconds
    value = torch.tensor([seconds], dtype=torch.float64, device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def barrier(context: Context) -> None:
    if context.world > 1:
        dist.barrier()


def teardown(context: Context) -> None:
    """Leave together (a rank that exits while another still writes can stall the store), then close."""
    if context.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
