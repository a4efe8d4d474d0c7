"""The Sampler seam: draw n_i completions for each prompt from the current policy.

Requests are *ragged*: a list of prompts with a count n_i each, which may differ per prompt and may
be 0 (the allocator decides). Every sampler returns exactly n_i :class:`Completion` objects for prompt
i and counts what it generated (``samples_generated``, ``tokens_generated``) so budgets are honest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Completion:
    """One sampled response.

    Attributes:
        token_ids: response tokens, ending with EOS when the model stopped by itself.
        text: the decoded response without special tokens.
        logprobs: per-token log-probabilities under the sampling distribution (logits / temperature,
            before top-p truncation), one per token in ``token_ids``.
        finish_reason: ``"stop"`` (EOS generated) or ``"length"`` (hit ``max_new_tokens``).
    """

    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: str


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
        if temperature <= 0:
            raise ValueError("temperature must be > 0 (use greedy=True for argmax decoding)")
        if not 0 < top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.samples_generated = 0
        self.tokens_generated = 0

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
        self.samples_generated += sum(len(c) for c in results)
        self.tokens_generated += sum(len(x.token_ids) for c in results for x in c)
        return results

    def state_dict(self) -> dict:
        return {"samples_generated": self.samples_generated, "tokens_generated": self.tokens_generated}

    def load_state_dict(self, state: dict) -> None:
        self.samples_generated = int(state["samples_generated"])
        self.tokens_generated = int(state["tokens_generated"])
