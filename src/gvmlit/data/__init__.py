"""Prompts, splits and batching: prompt sources, the built-in task, the rollout and SFT data modules."""

from gvmlit.data.arithmetic import ArithmeticTask
from gvmlit.data.generated import GeneratedTask
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.data.sft import DemonstrationDataModule
from gvmlit.data.sources import BenchmarkFiles, HFDatasetPrompts, JsonlPrompts, PromptSource
from gvmlit.records import Prompt, PromptRecord, Rollout

__all__ = [
    "ArithmeticTask",
    "BenchmarkFiles",
    "DemonstrationDataModule",
    "GeneratedTask",
    "HFDatasetPrompts",
    "JsonlPrompts",
    "Prompt",
    "PromptRecord",
    "PromptSource",
    "Rollout",
    "RolloutDataModule",
]
