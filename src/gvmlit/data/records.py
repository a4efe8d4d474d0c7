"""The prompt record: one problem with its reference answer, as every prompt source yields it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PromptRecord:
    """One training or evaluation problem.

    Attributes:
        uid: stable identifier (per-prompt statistics and group ids are keyed on it).
        problem: the problem text, before the prompt template is applied.
        answer: the reference answer the verifier compares against.
        meta: free-form extra fields (difficulty level, source file and row, …).
    """

    uid: str
    problem: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False)
