"""Supervised fine-tuning on demonstrations: the warm start π0 of the EM story (docs/method.md §1).

Trained on the :class:`~gvmlit.data.DemonstrationDataModule`'s (prompt, demonstration) pairs with the
NLL loss; evaluated like the rollout learners (the sampler and verifier serve evaluation only).
"""

from __future__ import annotations

from gvmlit.algorithms.base import PolicyModule
from gvmlit.losses import nll


class SFT(PolicyModule):
    """Token-level NLL on demonstrations (the arguments are ``PolicyModule``'s)."""

    def policy_loss(self, logprobs, batch):
        return nll(logprobs, batch["advantages"]), {}
