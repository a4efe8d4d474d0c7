"""Supervised fine-tuning on demonstrations: the warm start π0 of the EM story (docs/method.md §1).

Trained on the :class:`~gvmlit.data.DemonstrationDataModule`'s (prompt, demonstration) pairs with the
NLL loss; evaluated like the rollout learners (the sampler and verifier serve evaluation only).
"""

from __future__ import annotations

from gvmlit.algorithms.base import PolicyModule
from gvmlit.algorithms.settings import EvaluationSettings, LossSettings, Optimization
from gvmlit.losses import Aggregation, nll
from gvmlit.parallel import rank_rollouts
from gvmlit.policy import PolicyLoader
from gvmlit.records import Rollout
from gvmlit.sampling import Sampler
from gvmlit.verifiers import Verifier


class SFT(PolicyModule):
    """Token-level NLL on the data module's demonstrations.

    Args:
        policy: how to build the policy and tokenizer (``PretrainedPolicy`` or ``TinyCharPolicy``; LoRA with ``lora``).
        sampler: draws completions for evaluation (default: ``HFSampler``).
        verifier: scores evaluation answers (default: ``ArithmeticVerifier``).
        eval_sampler: sampling settings for evaluation (default: ``sampler``).
        aggregation: how per-token losses become one number (``token_mean`` by default).
        optim: the optimiser (learning rate, warm-up, …).
        evaluation: held-out evaluation (samples per problem, pass@k / maj@k, benchmark average).
    """

    trains_on = "demonstrations"

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        sampler: Sampler | None = None,
        verifier: Verifier | None = None,
        eval_sampler: Sampler | None = None,
        aggregation: Aggregation = "token_mean",
        optim: Optimization = Optimization(),
        evaluation: EvaluationSettings = EvaluationSettings(),
    ) -> None:
        super().__init__(
            policy=policy, sampler=sampler, verifier=verifier, eval_sampler=eval_sampler, optim=optim, evaluation=evaluation,
            loss=LossSettings(aggregation=aggregation),
        )  # fmt: skip
        self.aggregation = aggregation

    def epoch_data(self, epoch: int) -> list[Rollout]:
        mine, _ = rank_rollouts(self.data.demonstrations(epoch))  # under several processes, this rank's token-balanced part
        return mine

    def policy_loss(self, logprobs, batch):
        return nll(logprobs, batch["advantages"]), {}
