"""LightningModules: the learners (RAFT / RAFT++, GRPO, SFT), thin around :mod:`gvmlit.losses`, and their
settings in typed groups."""

from gvmlit.algorithms.base import PolicyModule
from gvmlit.algorithms.evaluation import Evaluation
from gvmlit.algorithms.grpo import GRPO
from gvmlit.algorithms.raft import RAFT
from gvmlit.algorithms.rollout import EpochRollouts, RolloutAlgorithm
from gvmlit.algorithms.settings import (
    EvaluationSettings,
    GroupSettings,
    LossSettings,
    Optimization,
    RolloutCorrection,
    RolloutSettings,
)
from gvmlit.algorithms.sft import SFT

__all__ = [
    "GRPO",
    "RAFT",
    "SFT",
    "EpochRollouts",
    "Evaluation",
    "EvaluationSettings",
    "GroupSettings",
    "LossSettings",
    "Optimization",
    "PolicyModule",
    "RolloutAlgorithm",
    "RolloutCorrection",
    "RolloutSettings",
]
