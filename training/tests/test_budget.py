"""run.time_budget_s: the schedule fitted to the budget, fitted again as the step rate changes, kept on resume."""

from __future__ import annotations

import json
from pathlib import Path

from echogen_training.budget import REFITS, RESERVE, TimeBudget
from echogen_training.config import OptimConfig
from echogen_training.logger import Logger
from echogen_training.loop import Trainer


def test_time_budget_fits_the_schedule_and_resume_keeps_it(tiny_config, tmp_path: Path) -> None:
    budget = ("optim.max_steps=100000", "optim.warmup_steps=2", "run.save_every=1000", f"run.out={tmp_path / 'b'}")
    config = tiny_config("pmtp", *budget, "run.time_budget_s=60", "run.stop_after=30")
    trainer = Trainer(config)
    assert trainer.run() == 0
    fitted = config.optim.max_steps
    assert 30 < fitted < 100000  # fitted after 25 steps to the rate, capped by the configured maximum
    saved = json.loads(next((tmp_path / "b" / "checkpoints").glob("step_*/trainer.json")).read_text())
    assert saved["budget_fitted"] and saved["config"]["optim"]["max_steps"] == fitted
    resumed = Trainer(tiny_config("pmtp", *budget, "run.time_budget_s=600", "run.stop_after=1"))
    assert resumed.config.optim.max_steps == fitted and resumed.scheduler.get_last_lr()[0] > 0
    capped = tiny_config("pmtp", *budget[:-1], f"run.out={tmp_path / 'c'}", "run.time_budget_s=0.5")
    assert Trainer(capped).run() == 0  # a budget spent before the fit still ends with a final model
    assert capped.optim.max_steps < 100000 and (tmp_path / "c" / "final" / "echogen.json").is_file()


def test_time_budget_is_fitted_again_when_the_step_rate_changes(tmp_path: Path) -> None:
    # the fit after warm-up sees start-up slowness (0.5 s per step here); the refits at REFITS of
    # the budget (25 and 50 s) use the mean rate since step 5, when steps have become faster (0.1 s, then 0.2)
    optim = OptimConfig(max_steps=100000, warmup_steps=2)
    budget = TimeBudget(100, optim, 0)
    logger = Logger(tmp_path, False, optim.max_steps, 0, False)
    usable, clock, step, fits = 100 * (1 - RESERVE), 0.0, 0, []

    def advance(steps: int, seconds_per_step: float) -> None:
        nonlocal clock, step
        for _ in range(steps):
            step += 1
            clock = round(clock + seconds_per_step, 6)
            budget.update(clock, step, logger)
            if budget.fitted and (not fits or fits[-1][1] != optim.max_steps):
                fits.append((step, optim.max_steps))

    assert REFITS == (0.25, 0.5)
    advance(25, 0.5)  # the first fit, at step 25 (12.5 s)
    advance(125, 0.1)  # to 25 s, step 150: refit
    advance(150, 0.2)  # to 55 s; refit at 50 s, step 275
    expected = [(step, step + int((usable - at) / ((at - 2.5) / (step - 5))))  # 2.5 s: step 5
                for step, at in ((25, 12.5), (150, 25.0), (275, 50.0))]  # fmt: skip
    assert expected[0][1] < expected[1][1]  # faster steps: a longer schedule
    assert [(s, m) for s, m in fits] == expected and budget.refits == ()
    advance(100, 0.01)  # faster again: no refit after the last one, the schedule's end stays put
    assert optim.max_steps == expected[-1][1]
    advance(1, 50.0)  # past the budget: stop at this step
    assert optim.max_steps == step

    # a first fit that comes late (slow warm-up, past a quarter of the budget) drops the refit points passed,
    # and a refit waits for enough steps to measure a rate
    optim = OptimConfig(max_steps=100000, warmup_steps=2)
    budget, clock, step, fits = TimeBudget(100, optim, 0), 0.0, 0, []
    advance(25, 1.2)  # first fit at 30 s: the 25 % refit point has passed
    assert fits == [(25, 25 + int((usable - 30) / 1.2))] and budget.refits == (0.5,)
    advance(17, 1.2)  # 50.4 s, but 17 steps since the fit: not yet
    assert len(fits) == 1
    advance(8, 0.1)  # 25 steps since the fit: refit at the mean rate since step 5 (6 s)
    assert fits[-1] == (50, 50 + int((usable - 51.2) / ((51.2 - 6) / 45)))
