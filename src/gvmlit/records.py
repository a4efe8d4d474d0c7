"""The records every part of gvmlit passes around, below all of them (no gvmlit imports here).

- :class:`PromptRecord` — one problem and its reference answer, as prompt sources yield it;
- :class:`Prompt` — a record with the token ids the policy sees;
- :class:`Verdict` — what a verifier says about one response;
- :class:`Completion` — one sampled response; the verifier's verdict is filled in after scoring;
- :class:`Rollout` — one training sequence with its advantage, as the loss consumes it.

Data, sampling, verifiers, allocation and the learner all import from here and never from each other
for these types, so there is no import cycle between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

#: How scoring one response went. ``timeout`` and ``error`` are faults of the verifier, not of the
#: response; the learner counts them and stops a run in which most rewards are faults.
Outcome = Literal["correct", "wrong", "no_answer", "unparseable_answer", "invalid_gold", "timeout", "error"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
FAULTS: tuple[str, ...] = ("timeout", "error")

FinishReason = Literal["stop", "length"]


@dataclass
class PromptRecord:
    """One training or evaluation problem.

    Attributes:
        uid: stable identifier (per-prompt statistics and group ids are keyed on it).
        problem: the problem text, before the prompt template is applied.
        answer: the reference answer the verifier compares against.
        meta: free-form extra fields. gvmlit reads three of them: ``solution`` (the demonstration SFT
            trains on), ``benchmark`` (evaluation reports each benchmark separately) and ``source``
            (file and row, named in error messages).
    """

    uid: str
    problem: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False)


@dataclass
class Prompt:
    """A prompt record with the token ids the policy is given (template, system prompt and chat template
    applied by the data module)."""

    record: PromptRecord
    token_ids: list[int]


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement of one response: a reward in [0, 1] and how scoring went."""

    reward: float
    outcome: Outcome


@dataclass
class Completion:
    """One sampled response (both samplers return this type).

    Attributes:
        token_ids: response tokens, ending with EOS when the model stopped by itself.
        text: the decoded response without special tokens.
        logprobs: per-token log-probabilities of the distribution the sampler drew from: logits / T,
            then its top-k / top-p / min-p truncation, renormalised (the behaviour policy); one per token
            in ``token_ids``; greedy decoding reports the untempered policy's. The trainer recomputes the
            same for the sampled tokens (``rollout/mismatch_*``, the mismatch correction).
        finish_reason: ``"stop"`` (EOS generated) or ``"length"`` (hit ``max_new_tokens``).
        reward, outcome: the verifier's verdict, set once the completion is scored (None before).
        accepted: whether the reward reached the learner's acceptance threshold, set with the verdict by
            the collector (the one place acceptance is decided).
    """

    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: FinishReason
    reward: float | None = None
    outcome: Outcome | None = None
    accepted: bool | None = None


@dataclass
class Rollout:
    """One training sequence: prompt, response and what the loss needs about it.

    Attributes:
        prompt_ids, response_ids: token ids.
        reward: verifier reward in [0, 1].
        advantage: RAFT's 1[accepted], GRPO's group advantage, or 1 for SFT demonstrations.
        group: index of the prompt within the epoch (GRPO group id, per-prompt aggregation).
        sampler_logprobs: log-probs the sampler reported for ``response_ids``.
        old_logprobs: log-probs recomputed by the trainer's policy before the first update (π_old).
        correction: the mismatch-correction weight of each response token (None: no correction).
    """

    prompt_ids: list[int]
    response_ids: list[int]
    reward: float
    advantage: float
    group: int
    sampler_logprobs: list[float] | None = None
    old_logprobs: list[float] | None = None
    correction: list[float] | None = None
