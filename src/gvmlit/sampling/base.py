"""The Sampler seam: draw n_i completions for each prompt from the current policy.

Requests are *ragged*: a list of prompts with a count n_i each, which may differ per prompt and may
be 0 (the allocator decides). Every sampler returns exactly n_i :class:`Completion` objects for prompt
i (the one completion type, :mod:`gvmlit.records`); the learner's collector counts them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gvmlit.errors import GvmlitError
from gvmlit.records import Completion


class Sampler(ABC):
    """Draws completions from a policy.

    Args:
        temperature: softmax temperature (1.0 = the policy itself).
        top_p: nucleus sampling mass (1.0 = off).
        max_new_tokens: longest response, in tokens.
    """

    #: whether ``generate`` may be given a sharded (FSDP2) policy: engines that hold their own copy of
    #: the weights gather them in ``prepare``; others get an unsharded local policy
    accepts_sharded_policy: bool = False

    def __init__(self, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64) -> None:
        if max_new_tokens < 1:
            raise GvmlitError(f"sampler.max_new_tokens must be ≥ 1, got {max_new_tokens}")
        if temperature <= 0:
            raise GvmlitError(f"sampler.temperature must be > 0, got {temperature} (greedy decoding is chosen per call)")
        if not 0 < top_p <= 1:
            raise GvmlitError(f"sampler.top_p must be in (0, 1], got {top_p}")
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens

    def prepare(self, policy: PreTrainedModel) -> None:
        """Called on every rank before each ``generate`` with the policy's current weights (engines sync
        them here; a collective when the policy is sharded). Default: nothing."""
        del policy

    def release(self) -> None:
        """Called after each ``generate`` (engines free their memory for training here). Default: nothing."""

    @abstractmethod
    def _generate(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[Sequence[int]],
        num_samples: Sequence[int],
        greedy: bool,
        desc: str,
    ) -> list[list[Completion]]:
        """Backend generation; ``num_samples`` are all ≥ 1 here."""

    def generate(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[Sequence[int]],
        num_samples: Sequence[int],
        greedy: bool = False,
        desc: str = "sampling",
    ) -> list[list[Completion]]:
        """Return ``num_samples[i]`` completions of ``prompts[i]`` (token ids) for every i.

        ``greedy=True`` decodes by argmax; its log-probs are those of the untempered policy.
        """
        if len(prompts) != len(num_samples):
            raise ValueError(f"{len(prompts)} prompts but {len(num_samples)} sample counts")
        if any(n < 0 for n in num_samples):
            raise ValueError("sample counts must be ≥ 0")
        active = [i for i, n in enumerate(num_samples) if n > 0]
        results: list[list[Completion]] = [[] for _ in prompts]
        if active:
            out = self._generate(
                policy, tokenizer, [prompts[i] for i in active], [int(num_samples[i]) for i in active], greedy, desc
            )
            for i, completions in zip(active, out):
                if len(completions) != num_samples[i]:
                    raise RuntimeError(f"sampler returned {len(completions)} completions, asked {num_samples[i]}")
                results[i] = completions
        return results
