"""The Verifier seam: a reward in [0, 1] for each completion against its reference answer.

Rejection sampling (RAFT's E-step) accepts a completion when its reward reaches the acceptance
threshold (1.0 by default); GRPO uses the reward itself. A verifier never crashes the run on one bad
sample: an exception while scoring costs that sample (reward 0) and is counted in ``outcomes``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence

from gvmlit.progress import progress_bar


class Verifier(ABC):
    """Scores responses against reference answers.

    Args:
        progress: show a progress bar while scoring.
    """

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress
        #: how scoring went, cumulative: ``correct``, ``wrong``, ``no_answer``, ``error``.
        self.outcomes: Counter[str] = Counter()

    @abstractmethod
    def score_one(self, response: str, reference: str) -> tuple[float, str]:
        """Return ``(reward, outcome)`` for one response; outcome is ``correct``, ``wrong`` or ``no_answer``."""

    def extract(self, response: str) -> str | None:
        """The canonical final answer of a response (majority voting, maj@k); None when there is none."""
        del response
        return None

    def score(self, responses: Sequence[str], references: Sequence[str], desc: str = "verifying") -> list[float]:
        """Rewards for ``responses[j]`` against ``references[j]``."""
        if len(responses) != len(references):
            raise ValueError(f"{len(responses)} responses but {len(references)} references")
        rewards = []
        pairs = zip(responses, references)
        for response, reference in progress_bar(pairs, total=len(responses), desc=desc, enabled=self.progress):
            try:
                reward, outcome = self.score_one(response, reference)
            except Exception:  # noqa: BLE001 — one bad sample must not end the run; it is counted
                reward, outcome = 0.0, "error"
            self.outcomes[outcome] += 1
            rewards.append(float(reward))
        return rewards
