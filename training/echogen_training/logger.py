"""Metrics to a progress bar, TensorBoard event files and a JSONL log (main rank only)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm


class Logger:
    def __init__(self, out: Path, enabled: bool, total: int, start: int, progress: bool) -> None:
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=start, disable=not (enabled and progress), dynamic_ncols=True)
        self.writer = None
        self.jsonl = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            out.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(out / "tb"))
            self.jsonl = (out / "metrics.jsonl").open("a", encoding="utf-8")
        self.started = time.time()

    def log(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        for key, value in metrics.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)
        record = {"step": step, "split": prefix, "time_s": round(time.time() - self.started, 2), **metrics}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if prefix == "train":
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in list(metrics.items())[:4]})

    def retotal(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def advance(self) -> None:
        self.bar.update(1)

    def message(self, text: str) -> None:
        if self.enabled:
            tqdm.write(text)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
            self.jsonl.close()
