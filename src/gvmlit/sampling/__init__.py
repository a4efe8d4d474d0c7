"""Samplers draw ragged numbers of completions per prompt from the live policy."""

from gvmlit.sampling.base import Completion, Sampler
from gvmlit.sampling.hf import HFSampler
from gvmlit.sampling.vllm import VLLMSampler

__all__ = ["Completion", "HFSampler", "Sampler", "VLLMSampler"]
