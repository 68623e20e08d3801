"""`echogen-train-bench`: training throughput (tokens/s) and model-FLOP utilisation against a matmul
peak measured in the same run. Default: PMTP on the tabletop preset, batch 32, bf16 autocast."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from echogen_ros.perf import matmul_peak
from echogen_training.config import STAGES, load_config
from echogen_training.loop import Trainer


def step_tokens(inputs: dict, generation_tokens: int) -> int:
    """Sequence positions processed by the language model in one step's inputs."""
    total = 0
    for key in ("l2i", "i2l"):
        batch = inputs.get(key)
        if batch is not None:
            total += int(batch.seq.mask.sum())
            if key == "l2i":
                total += batch.seq.ids.shape[0] * generation_tokens
    if "tokens" in inputs:
        total += int(inputs["prompts"].mask.sum()) + inputs["tokens"].numel()
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="echogen-train-bench", description=__doc__)
    parser.add_argument("--stage", default="pmtp", choices=STAGES)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.batch_size=16 model.init=tiny")
    args = parser.parse_intermixed_args(argv)
    with tempfile.TemporaryDirectory() as out:
        base = ["model.init=tabletop", "data.batch_size=32", "eval.every=0", f"run.out={out}", "run.save_every=1000000",
                "run.progress=false", "optim.warmup_steps=1", f"optim.max_steps={args.steps + 2}"]  # fmt: skip
        trainer = Trainer(load_config(None, [*base, *args.overrides], stage=args.stage))
        for _ in range(2):
            trainer.train_step()  # warm-up
        inputs = trainer.next_inputs()
        with FlopCounterMode(display=False) as counter:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=trainer.config.run.autocast == "bf16"):
                loss, _ = trainer.wrapped(**inputs)
            loss.backward()
        trainer.optimizer.zero_grad(set_to_none=True)
        flops = counter.get_total_flops()
        tokens = step_tokens(inputs, trainer.echogen.scheme.generation_tokens)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        seconds = (time.perf_counter() - start) / args.steps
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    result = {
        "stage": args.stage,
        "batch_size": trainer.config.data.batch_size,
        "step_s": round(seconds, 3),
        "tokens_per_step": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "model_tflop_per_step": round(flops / 1e12, 4),
        "achieved_gflops": round(flops / seconds / 1e9, 1),
        "matmul_peak_bf16_gflops": round(peak_bf16 / 1e9, 1),
        "matmul_peak_fp32_gflops": round(peak_fp32 / 1e9, 1),
        "mfu_vs_bf16_peak": round(flops / seconds / peak_bf16, 4),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k:>24}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
