"""run.time_budget_s: fit the schedule's length (optim.max_steps) to a wall-time budget, so a run ends on time
with its learning rate annealed."""

from __future__ import annotations

from echogen_training.config import OptimConfig
from echogen_training.logger import Logger

RESERVE = 0.08  # of the budget, kept for evaluations, checkpoints and the final save
# fractions of the budget at which max_steps is fitted again to the mean step rate since step 5: the first fit
# (after warm-up) can see start-up slowness (input workers filling, first kernels) that later goes away, and a
# mean over more steps shrugs off a passing slowdown. A refit early in the cosine schedule moves the LR curve
# only slightly.
REFITS = (0.25, 0.5)
REFIT_STEPS = 25  # a refit waits for this many steps since the last fit


class TimeBudget:
    """Once past warm-up, fit max_steps to the time left at the measured step rate, fit it again at REFITS
    of the budget, and stop at the budget whatever happens."""

    def __init__(self, seconds: float, optim: OptimConfig, first_step: int) -> None:
        self.seconds, self.optim, self.first_step = seconds, optim, first_step
        self.cap = optim.max_steps  # the configured maximum: no fit goes above it
        self.fitted = False
        self.refits = REFITS
        self.fit_step = 0  # the step of the last fit
        self.rate_mark: tuple[float, int] | None = None  # (seconds, step) at step 5 of this invocation

    def resumed(self, max_steps: int) -> None:
        """A resumed run keeps the schedule its first invocation fitted."""
        self.optim.max_steps = max_steps
        self.fitted, self.refits = True, ()

    def update(self, now: float, step: int, logger: Logger) -> None:
        """After step `step`; `now`: seconds since this invocation's loop started, the same on every rank."""
        budget, done = self.seconds, step - self.first_step
        if done == 5:  # rate measured after start-up (first kernels, worker start)
            self.rate_mark = (now, step)
        first = not self.fitted and self.rate_mark and done >= max(25, self.optim.warmup_steps - self.first_step)
        again = (self.fitted and self.refits and now >= budget * self.refits[0]
                 and step - self.fit_step >= REFIT_STEPS)  # fmt: skip
        if first or again:
            mark_time, mark_step = self.rate_mark
            per_step = (now - mark_time) / max(1, step - mark_step)
            fit = step + int((budget * (1 - RESERVE) - now) / per_step)
            self.optim.max_steps = max(step + 1, min(self.cap, fit))
            # a refit point passed by now is dropped (a late first fit is not followed at once by another)
            self.refits = tuple(f for f in self.refits if budget * f > now)
            self.fitted, self.fit_step = True, step
            logger.retotal(self.optim.max_steps)
            logger.message(
                f"time budget {budget:.0f} s: {per_step * 1000:.0f} ms/step, max_steps {self.optim.max_steps}"
            )
        if now > budget and step < self.optim.max_steps:
            self.optim.max_steps = step
            logger.message(f"time budget {budget:.0f} s spent: stopping at step {step}")
