"""Supervised fine-tuning on demonstrations: the warm start π0 of the EM story (method.md §1).

``SFT`` is the shared module with advantage 1 on every demonstration and the NLL loss;
``DemonstrationDataModule`` serves (prompt, reference solution) pairs instead of sampled rollouts and
evaluates exactly as the RolloutDataModule does, so SFT and RL curves are comparable.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from gvmlit.algorithms.base import RolloutAlgorithm
from gvmlit.data.collate import Rollout
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.errors import GvmlitError
from gvmlit.losses import nll


class SFT(RolloutAlgorithm):
    """Token-level NLL on demonstrations (see ``RolloutAlgorithm`` for the arguments)."""

    def rollout_advantages(self, rewards, accepted, group_ids):
        return torch.ones_like(rewards), torch.ones_like(rewards, dtype=torch.bool), {}

    def policy_loss(self, logprobs, batch):
        return nll(logprobs, batch["advantages"]), {}


class DemonstrationDataModule(RolloutDataModule):
    """Serves (prompt, demonstration) pairs from the source's training split.

    The demonstration of a record is ``record.meta[solution_key]`` followed by EOS. Takes the
    arguments of ``RolloutDataModule`` (sampler and verifier are used for validation only) and:

    Args:
        solution_key: the record field holding the demonstration.
    """

    def __init__(self, *args, solution_key: str = "solution", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.solution_key = solution_key

    def train_dataloader(self) -> DataLoader:
        tokenizer = self.module.tokenizer
        records = self.epoch_prompts(self.epoch)
        rollouts = []
        for group, record in enumerate(records):
            if self.solution_key not in record.meta:
                raise GvmlitError(f"training record {record.uid} has no {self.solution_key!r} demonstration")
            response = tokenizer(record.meta[self.solution_key], add_special_tokens=False)["input_ids"]
            rollouts.append(Rollout(self.prompt_ids(record), response + [tokenizer.eos_token_id], 1.0, 1.0, group))
        self.epoch_metrics = {"budget/samples_generated": float(self.samples_generated)}
        rollouts, _ = self.train_share(rollouts)  # under several processes, this rank's token-balanced part
        return self._loader(rollouts, seed=self.seed * 100_003 + self.epoch)
