"""LightningModules: RAFT / RAFT++, SFT (and GRPO), thin around :mod:`gvmlit.losses`."""

from gvmlit.algorithms.base import RolloutAlgorithm
from gvmlit.algorithms.grpo import GRPO
from gvmlit.algorithms.raft import RAFT
from gvmlit.algorithms.sft import SFT, DemonstrationDataModule

__all__ = ["GRPO", "RAFT", "SFT", "DemonstrationDataModule", "RolloutAlgorithm"]
