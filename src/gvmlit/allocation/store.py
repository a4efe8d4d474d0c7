"""Per-prompt statistics that persist across epochs, owned by the data side and checkpointed with it.

For every prompt seen so far: its acceptance history (epoch, samples, accepted), the samples and
tokens spent on it, and a running estimate of its gradient norm G_i. GVM++ reads its Beta posterior
for p_i and its G_i estimate from here; every allocator's spending is recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PromptRecordStats:
    history: list[tuple[int, int, int]] = field(default_factory=list)  # (epoch, samples, accepted)
    samples: int = 0
    tokens: int = 0
    grad_norm: float | None = None
    grad_norm_updates: int = 0


class PromptStatsStore:
    """A dictionary uid → statistics, with the posterior and running-estimate rules GVM++ uses."""

    def __init__(self) -> None:
        self.prompts: dict[str, PromptRecordStats] = {}

    def __contains__(self, uid: str) -> bool:
        return uid in self.prompts and bool(self.prompts[uid].history)

    def get(self, uid: str) -> PromptRecordStats:
        return self.prompts.setdefault(uid, PromptRecordStats())

    def record_samples(self, uid: str, epoch: int, samples: int, accepted: int, tokens: int) -> None:
        if samples == 0:
            return
        entry = self.get(uid)
        entry.history.append((epoch, samples, accepted))
        entry.samples += samples
        entry.tokens += tokens

    def record_grad_norm(self, uid: str, value: float, momentum: float) -> None:
        """Running estimate: the first observation is taken as is, later ones as Ĝ ← m·Ĝ + (1−m)·G."""
        entry = self.get(uid)
        entry.grad_norm = value if entry.grad_norm is None else momentum * entry.grad_norm + (1 - momentum) * value
        entry.grad_norm_updates += 1

    def posterior(self, uid: str, epoch: int, prior_accepted: float, prior_rejected: float, decay: float) -> tuple[float, float]:
        """Beta(a, b) posterior of p_i; an observation made k epochs ago counts with weight decay^k
        (the policy moves, so old acceptance counts go stale)."""
        a, b = prior_accepted, prior_rejected
        for seen_epoch, samples, accepted in self.get(uid).history if uid in self.prompts else []:
            weight = decay ** max(epoch - seen_epoch, 0)
            a += weight * accepted
            b += weight * (samples - accepted)
        return a, b

    def state_dict(self) -> dict:
        return {
            uid: {
                "history": [list(h) for h in s.history],
                "samples": s.samples,
                "tokens": s.tokens,
                "grad_norm": s.grad_norm,
                "grad_norm_updates": s.grad_norm_updates,
            }
            for uid, s in self.prompts.items()
        }

    def load_state_dict(self, state: dict) -> None:
        self.prompts = {
            uid: PromptRecordStats(
                history=[tuple(h) for h in s["history"]],
                samples=s["samples"],
                tokens=s["tokens"],
                grad_norm=s["grad_norm"],
                grad_norm_updates=s["grad_norm_updates"],
            )
            for uid, s in state.items()
        }
