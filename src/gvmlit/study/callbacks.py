"""EvaluateEverySamples: curve points at equal spacing in generated samples, whatever an arm spends per epoch.

``trainer.check_val_every_n_epoch`` spaces evaluations in epochs; an arm that spends half of N per epoch
would then be evaluated twice as often per sample (twice the evaluation time) and, with an odd number of
epochs, not at the end of its budget. This callback decides at each epoch's first batch — after the
learner has collected the epoch — whether the epoch ends with an evaluation: when ``every`` generated
training samples have passed since the last one, or when the run has reached its budget
(``rollout.max_samples``), so the last curve point sits at the budget.
"""

from __future__ import annotations

from lightning.pytorch import Callback

#: "never at an epoch boundary" for Lightning's epoch-based validation check
NEVER = 1 << 30


class EvaluateEverySamples(Callback):
    """Validate after the epoch in which ``every`` more generated samples were spent (and at the budget).

    Args:
        every: generated training samples between two evaluations.
    """

    def __init__(self, every: int = 256) -> None:
        self.every = every
        self._last = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx != 0:
            return
        spent = pl_module.budget.training_samples
        limit = pl_module.rollout.max_samples
        due = spent - self._last >= self.every or (limit is not None and spent >= limit)
        trainer.check_val_every_n_epoch = 1 if due else NEVER

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":  # not a test's or validate's evaluation
            self._last = pl_module.budget.training_samples

    def state_dict(self) -> dict:
        return {"last": self._last}

    def load_state_dict(self, state_dict: dict) -> None:
        self._last = int(state_dict.get("last", 0))
