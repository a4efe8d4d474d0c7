"""Prompt sources, the built-in task, the rollout data module and its collate."""

from gvmlit.data.arithmetic import ArithmeticTask
from gvmlit.data.collate import Rollout, collate_rollouts
from gvmlit.data.records import PromptRecord
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.data.sources import BenchmarkFiles, HFDatasetPrompts, JsonlPrompts, PromptSource

__all__ = ["ArithmeticTask", "BenchmarkFiles", "HFDatasetPrompts", "JsonlPrompts", "PromptRecord", "PromptSource", "Rollout", "RolloutDataModule", "collate_rollouts"]
