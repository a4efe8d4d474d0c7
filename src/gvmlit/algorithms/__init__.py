"""LightningModules: the learners (RAFT / RAFT++, GRPO, SFT), thin around :mod:`gvmlit.losses`."""

from gvmlit.algorithms.base import PolicyModule
from gvmlit.algorithms.grpo import GRPO
from gvmlit.algorithms.raft import RAFT
from gvmlit.algorithms.rollout import EpochRollouts, RolloutAlgorithm
from gvmlit.algorithms.sft import SFT

__all__ = ["GRPO", "RAFT", "SFT", "EpochRollouts", "PolicyModule", "RolloutAlgorithm"]
