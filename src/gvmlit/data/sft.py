"""DemonstrationDataModule: (prompt, demonstration) pairs for supervised fine-tuning (the warm start π0).

The demonstration of a record is ``record.meta[solution_key]`` (``"solution"`` by default — the
built-in ``ArithmeticTask`` and any JSON-lines file with a ``solution`` field provide it), followed by
EOS. Prompts, splits, batching and evaluation are the :class:`RolloutDataModule`'s, so SFT and RL curves
are comparable; the SFT learner asks for ``demonstrations(epoch)`` at the start of every epoch.
"""

from __future__ import annotations

from gvmlit.data.prompts import record_name, refuse_unknown
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.errors import GvmlitError
from gvmlit.records import Rollout


class DemonstrationDataModule(RolloutDataModule):
    """Serves the training split's demonstrations, ``prompts_per_epoch`` of them per epoch.

    Args:
        solution_key: the record field (``record.meta``) holding the demonstration.
        **kwargs: the arguments of ``RolloutDataModule`` (source, prompts_per_epoch, batch_size, …).
    """

    serves = "demonstrations"

    def __init__(self, solution_key: str = "solution", **kwargs) -> None:
        super().__init__(**kwargs)
        self.solution_key = solution_key

    def demonstrations(self, epoch: int) -> list[Rollout]:
        """The epoch's prompts with their demonstrations as training sequences (advantage 1)."""
        tokenizer, rollouts = self._tokenizer, []
        for group, prompt in enumerate(self.epoch_prompts(epoch)):
            solution = prompt.record.meta.get(self.solution_key)
            if not solution:
                raise GvmlitError(f"training record {record_name(prompt.record)} has no {self.solution_key!r} demonstration (data.solution_key)")
            response = tokenizer(solution, add_special_tokens=False)["input_ids"]
            refuse_unknown(response, tokenizer, f"the demonstration of {record_name(prompt.record)}", solution)
            response.append(tokenizer.eos_token_id)
            rollouts.append(Rollout(prompt.token_ids, response, 1.0, 1.0, group))
        return rollouts
