"""PromptStatsStore: what has been observed of every prompt so far, across epochs (docs/allocation.md).

The learner records every scored batch of samples of a prompt here — pilot and training draws alike —
and every gradient norm an allocator asked for. Allocators only *read* it: each turns the observations
into its own estimates (GVM: this epoch's pilots; GVM++: a decayed Beta posterior and a running G;
Knapsack: the last visit's success rate; GRESO: the streak of zero-variance visits). Any allocator,
built in or a plugin, can use it the same way. It is saved in the learner's checkpoint.

The symbols of docs/method.md: a prompt's acceptance rate p_i is estimated from ``accepted / samples``
of its visits, its gradient norm G_i from the recorded ``GradNormObservation`` means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from gvmlit.groups import UsefulGroup, carries_gradient

SamplePurpose = Literal["pilot", "train"]


@dataclass(frozen=True)
class Visit:
    """One scored batch of samples of one prompt.

    Attributes:
        epoch: the epoch (EM iteration) it was drawn in.
        purpose: ``pilot`` (allocation estimate) or ``train`` (the main draw).
        samples, accepted, tokens: how many were drawn, how many reached the acceptance threshold,
            and their response tokens.
        reward_min, reward_max: the range of the rewards (equal: the batch carries no GRPO signal).
    """

    epoch: int
    purpose: SamplePurpose
    samples: int
    accepted: int
    tokens: int
    reward_min: float
    reward_max: float


@dataclass(frozen=True)
class GradNormObservation:
    """Mean ‖∇_θs (−log π(y|x))‖₂ over ``count`` accepted samples of one prompt, measured in ``epoch``."""

    epoch: int
    purpose: SamplePurpose
    mean: float
    count: int


@dataclass
class PromptHistory:
    """Everything observed of one prompt, oldest first."""

    visits: list[Visit] = field(default_factory=list)
    grad_norms: list[GradNormObservation] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(v.samples for v in self.visits)

    @property
    def tokens(self) -> int:
        return sum(v.tokens for v in self.visits)

    def in_epoch(self, epoch: int, purpose: SamplePurpose | None = None) -> list[Visit]:
        return [v for v in self.visits if v.epoch == epoch and (purpose is None or v.purpose == purpose)]

    def epochs(self) -> list[int]:
        """The epochs in which the prompt was sampled, in order."""
        return sorted({v.epoch for v in self.visits})


class PromptStatsStore:
    """uid → :class:`PromptHistory`, with the few estimates several allocators share."""

    def __init__(self) -> None:
        self.prompts: dict[str, PromptHistory] = {}

    def __contains__(self, uid: str) -> bool:
        return uid in self.prompts and bool(self.prompts[uid].visits)

    def __len__(self) -> int:
        return len(self.prompts)

    def history(self, uid: str) -> PromptHistory:
        """The prompt's history (empty for a prompt never seen; not stored until something is recorded)."""
        return self.prompts.get(uid, PromptHistory())

    # ------------------------------------------------------------------ recording (the learner)
    def record_visit(self, uid: str, visit: Visit) -> None:
        if visit.samples > 0:
            self.prompts.setdefault(uid, PromptHistory()).visits.append(visit)

    def record_grad_norms(self, uid: str, observation: GradNormObservation) -> None:
        if observation.count > 0:
            self.prompts.setdefault(uid, PromptHistory()).grad_norms.append(observation)

    # ------------------------------------------------------------------ shared estimates (allocators)
    def beta_posterior(self, uid: str, epoch: int, prior_accepted: float, prior_rejected: float, decay: float) -> tuple[float, float]:
        """Beta(a, b) posterior of p_i over every visit; a visit made k epochs before ``epoch`` weighs
        decay^k (the policy moves, so old acceptance counts go stale)."""
        a, b = prior_accepted, prior_rejected
        for visit in self.history(uid).visits:
            weight = decay ** max(epoch - visit.epoch, 0)
            a += weight * visit.accepted
            b += weight * (visit.samples - visit.accepted)
        return a, b

    def last_acceptance_rate(self, uid: str) -> float | None:
        """accepted / samples over the prompt's most recent epoch of visits (None if never sampled)."""
        epochs = self.history(uid).epochs()
        if not epochs:
            return None
        visits = self.history(uid).in_epoch(epochs[-1])
        return sum(v.accepted for v in visits) / sum(v.samples for v in visits)

    def grad_norm_average(self, uid: str, momentum: float) -> float | None:
        """Running estimate of G_i over its observations: the first taken as is, then Ĝ ← m·Ĝ + (1−m)·G."""
        estimate = None
        for observation in self.history(uid).grad_norms:
            estimate = observation.mean if estimate is None else momentum * estimate + (1 - momentum) * observation.mean
        return estimate

    def epoch_group(self, uid: str, epoch: int) -> tuple[int, int, float, float] | None:
        """(samples, accepted, reward_min, reward_max) over the prompt's visits in ``epoch`` (None if none)."""
        visits = self.history(uid).in_epoch(epoch)
        if not visits:
            return None
        return sum(v.samples for v in visits), sum(v.accepted for v in visits), min(v.reward_min for v in visits), max(v.reward_max for v in visits)

    def zero_variance_streak(self, uid: str, useful: UsefulGroup = "mixed") -> int:
        """How many of the prompt's most recent visited epochs in a row gave a group that carried no
        gradient (:func:`gvmlit.groups.carries_gradient`; with ``mixed``: all-equal rewards, ≥ 2 samples)."""
        streak = 0
        for epoch in reversed(self.history(uid).epochs()):
            samples, accepted, low, high = self.epoch_group(uid, epoch)
            if (samples < 2 and useful == "mixed") or carries_gradient(samples, accepted, low, high, useful):
                break
            streak += 1
        return streak

    def mean_response_tokens(self, uid: str) -> float | None:
        history = self.history(uid)
        return history.tokens / history.samples if history.samples else None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {
            uid: {"visits": [asdict(v) for v in h.visits], "grad_norms": [asdict(g) for g in h.grad_norms]}
            for uid, h in self.prompts.items()
        }

    def load_state_dict(self, state: dict) -> None:
        self.prompts = {
            uid: PromptHistory([Visit(**v) for v in h["visits"]], [GradNormObservation(**g) for g in h["grad_norms"]])
            for uid, h in state.items()
        }
