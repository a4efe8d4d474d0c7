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

    Every sampler reports, for each sampled token, its log-probability under the distribution it drew
    from: logits / temperature, then top-k, top-p and min-p truncation, renormalised (the behaviour
    policy). The trainer recomputes the same for the mismatch diagnostics and correction.

    Args:
        temperature: softmax temperature (1.0 = the policy itself).
        top_p: nucleus sampling mass (1.0 = off).
        max_new_tokens: longest response, in tokens.
        top_k: sample among the k most likely tokens only (0 = off).
        min_p: drop tokens less likely than min_p × the most likely one (0 = off).
    """

    #: whether ``generate`` may be given a sharded (FSDP2) policy: engines that hold their own copy of
    #: the weights gather them in ``prepare``; others get an unsharded local policy
    accepts_sharded_policy: bool = False
    #: whether the reported log-probs come from the trainer's own model and kernels (then they match the
    #: trainer's up to float error, and ``loss.correction.mode: auto`` leaves the correction off)
    exact_logprobs: bool = True
    #: whether min-p truncation comes before top-k / top-p (vLLM) or after them (transformers)
    min_p_first: bool = False

    def __init__(self, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64, top_k: int = 0, min_p: float = 0.0) -> None:
        if max_new_tokens < 1:
            raise GvmlitError(f"sampler.max_new_tokens must be ≥ 1, got {max_new_tokens}")
        if temperature <= 0:
            raise GvmlitError(f"sampler.temperature must be > 0, got {temperature} (greedy decoding is chosen per call)")
        if not 0 < top_p <= 1:
            raise GvmlitError(f"sampler.top_p must be in (0, 1], got {top_p}")
        if top_k < 0 or not 0 <= min_p < 1:
            raise GvmlitError(f"sampler.top_k must be ≥ 0 and sampler.min_p in [0, 1); got {top_k}, {min_p}")
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.top_k = top_k
        self.min_p = min_p

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
