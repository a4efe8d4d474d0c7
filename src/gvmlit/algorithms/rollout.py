"""RolloutAlgorithm: the learner that owns the EM epoch (docs/method.md §1, §3).

:meth:`RolloutAlgorithm.collect_epoch` is the whole E-step, top to bottom::

    prompts → allocator.plan_pilots → collect(pilots) → allocator.allocate → n_i
            → collect(main draws) → weigh (advantages, which rollouts to keep) → this rank's share → π_old
            → EpochRollouts (typed) → the data module batches it

``collect`` is the :class:`~gvmlit.collector.RolloutCollector` (sample → verify → gather → count) plus
the bookkeeping allocators read: every scored batch goes into the :class:`PromptStatsStore`, with the
gradient norms the allocator asked for. RAFT and GRPO differ only in ``rollout_advantages`` (how a
rollout is weighed) and ``policy_loss``.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from jsonargparse.typing import PositiveInt

from gvmlit.algorithms.base import PolicyModule
from gvmlit.allocation import Allocation, AllocationRequest, BudgetAllocator, PromptStatsStore, UniformAllocator
from gvmlit.allocation.base import UsefulGroup
from gvmlit.allocation.gradnorm import grad_norms
from gvmlit.allocation.store import GradNormObservation, SamplePurpose, Visit
from gvmlit.collate import collate_rollouts
from gvmlit.forward import batch_logprobs
from gvmlit.metrics import acceptance_rates, allocation_metrics, outcome_metrics, rollout_metrics
from gvmlit.parallel import all_gather_objects, rank_rollouts, rank_share, world
from gvmlit.records import Completion, Prompt, PromptRecord, Rollout

log = logging.getLogger("gvmlit")


@dataclass
class EpochRollouts:
    """What one epoch's E-step produced.

    Attributes:
        epoch: the epoch (EM iteration).
        rollouts: this rank's weighted training sequences, π_old filled in when the loss needs it.
        prompts: the epoch's prompts; groups: every scored sample of each (kept pilots included).
        allocation: the allocator's decision (n_i, p̂_i, Ĝ_i, its own metrics).
        metrics: scalars for the loggers; histograms: per-prompt arrays for the loggers.
        started: ``time.perf_counter()`` when the epoch began (epoch wall time).
    """

    epoch: int
    rollouts: list[Rollout]
    prompts: list[PromptRecord]
    groups: list[list[Completion]]
    allocation: Allocation
    metrics: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    started: float = 0.0


@dataclass
class Draw:
    """One round of an epoch's E-step: its prompts, the pilots drawn, the groups trained on (kept pilots
    included), the allocation and the budget it was given; refill rounds are appended (``extend``)."""

    prompts: list[Prompt]
    pilots: list[list[Completion]]
    groups: list[list[Completion]]
    allocation: Allocation
    budget: int

    def extend(self, more: Draw) -> Draw:
        def joined(a, b):
            return None if a is None or b is None else np.concatenate([a, b])

        allocation = Allocation(
            np.concatenate([self.allocation.samples, more.allocation.samples]),
            joined(self.allocation.acceptance_rate, more.allocation.acceptance_rate),
            joined(self.allocation.grad_norm, more.allocation.grad_norm),
            self.allocation.metrics,
            {k: joined(v, more.allocation.histograms.get(k)) for k, v in self.allocation.histograms.items() if k in more.allocation.histograms},
        )  # fmt: skip
        return Draw(self.prompts + more.prompts, self.pilots + more.pilots, self.groups + more.groups, allocation, self.budget + more.budget)


class RolloutAlgorithm(PolicyModule):
    """A learner trained on its own rollouts, with a per-prompt sampling budget.

    Subclasses say what makes a prompt's group of samples useful to them (``useful_group``, passed to
    allocators): ``mixed`` rewards (GRPO) or at least one ``accepted`` sample (RAFT).

    Args:
        allocator: decides n_i per prompt (default: ``UniformAllocator``).
        samples_per_prompt: average samples per prompt; the epoch's budget is N = this × prompts.
        acceptance_threshold: a completion is accepted (RAFT's E-step) when its reward is at least this.
        grad_norm_batch_size: sequences per batched gradient-norm pass (allocators that ask for G_i).
        logprob_batch_size: sequences per forward pass when recomputing π_old.
        **kwargs: the arguments of ``PolicyModule`` (policy, sampler, verifier, lr, …).
    """

    def __init__(
        self,
        allocator: BudgetAllocator | None = None,
        samples_per_prompt: PositiveInt = 8,
        acceptance_threshold: float = 1.0,
        grad_norm_batch_size: PositiveInt = 64,
        logprob_batch_size: PositiveInt = 64,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.allocator = allocator if allocator is not None else UniformAllocator()
        self.samples_per_prompt = samples_per_prompt
        self.acceptance_threshold = acceptance_threshold
        self.grad_norm_batch_size = grad_norm_batch_size
        self.logprob_batch_size = logprob_batch_size
        self.store = PromptStatsStore()
        self.refill_rounds = 0  # rounds of further prompts while too few groups carry a gradient (GRPO's dynamic sampling)
        self._estimate_seconds = 0.0

    useful_group: UsefulGroup = "mixed"

    def rollout_hook(self):
        return self.collect_epoch

    # ------------------------------------------------------------------ the epoch
    def collect_epoch(self, prompts: list[Prompt], epoch: int, more_prompts: Callable[[int, int], list[Prompt]] | None = None) -> EpochRollouts:
        """One EM iteration's E-step: allocate → collect → (refill) → weigh → π_old (see the module docstring).

        ``more_prompts(round, k)`` gives k further prompts for a refill round (dynamic sampling)."""
        started, before = time.perf_counter(), self.budget.state_dict()
        self._estimate_seconds = 0.0
        with self.random_stream(f"train:{epoch}"):
            draw = self.draw(prompts, epoch)
            for refill in range(self.refill_rounds if more_prompts else 0):  # DAPO: until enough groups carry a gradient
                missing = len(prompts) - self.informative_groups(draw.groups)
                if missing <= 0:
                    break
                draw = draw.extend(self.draw(more_prompts(refill, len(prompts)), epoch))
        rollouts, weighing = self.weigh(draw.prompts, draw.groups)
        weighing["allocation/refill_prompts"] = float(len(draw.prompts) - len(prompts))
        rollouts, left_out = rank_rollouts(rollouts)
        if self.needs_old_logprobs:  # every rank calls it: a sharded forward is a collective
            weighing["rollout/sampler_trainer_logprob_diff"] = self.recompute_old_logprobs(rollouts)
        result = EpochRollouts(epoch, rollouts, [p.record for p in draw.prompts], draw.groups, draw.allocation, started=started)
        result.metrics, result.histograms = self.epoch_metrics(result, draw, weighing, before, left_out, time.perf_counter() - started)
        self.last_rollouts = result
        self._log_epoch(result)
        return result

    def draw(self, prompts: list[Prompt], epoch: int) -> Draw:
        """Pilots → allocation → main draws for ``prompts`` (one round of the E-step)."""
        started = time.perf_counter()
        records = [p.record for p in prompts]
        policy = self.rollout_policy(self.sampler)
        pilots = self.collect(policy, prompts, self.allocator.plan_pilots(records, self.store, epoch), "pilot", epoch)
        request = AllocationRequest(records, pilots, self.accepted(pilots), self.samples_per_prompt * len(prompts), epoch, self.store, self.useful_group)
        allocation = self.allocator.allocate(request)
        self.check_allocation(allocation, request)
        self._estimate_seconds += time.perf_counter() - started
        drawn = self.collect(policy, prompts, allocation.samples, "train", epoch)
        groups = [p + d for p, d in zip(pilots, drawn)] if self.allocator.keep_pilots else drawn
        return Draw(list(prompts), pilots, groups, allocation, self.allocator.main_budget(request))

    def informative_groups(self, groups: list[list[Completion]]) -> int:
        """Groups whose rewards differ (the ones a GRPO update learns from)."""
        return sum(len(g) >= 2 and min(c.reward for c in g) != max(c.reward for c in g) for g in groups)

    def collect(self, policy, prompts: list[Prompt], counts, purpose: SamplePurpose, epoch: int) -> list[list[Completion]]:
        """Sample and score ``counts[i]`` completions of ``prompts[i]``; record them in the store with
        the gradient norms the allocator asks for."""
        expected = [self.store.mean_response_tokens(p.record.uid) or self.sampler.max_new_tokens / 2 for p in prompts]
        groups = self.collector.collect(policy, prompts, counts, purpose, expected_response_tokens=expected)
        for prompt, group in zip(prompts, groups):
            if group:
                rewards = [c.reward for c in group]
                accepted = sum(self.is_accepted(c) for c in group)
                tokens = sum(len(c.token_ids) for c in group)
                self.store.record_visit(prompt.record.uid, Visit(epoch, purpose, len(group), accepted, tokens, min(rewards), max(rewards)))
        started = time.perf_counter()
        self.record_grad_norms(prompts, groups, purpose, epoch)
        self._estimate_seconds += time.perf_counter() - started if purpose == "train" else 0.0
        return groups

    def is_accepted(self, completion: Completion) -> bool:
        return completion.reward >= self.acceptance_threshold

    def accepted(self, groups: list[list[Completion]]) -> list[list[bool]]:
        return [[self.is_accepted(c) for c in group] for group in groups]

    def record_grad_norms(self, prompts: list[Prompt], groups: list[list[Completion]], purpose: SamplePurpose, epoch: int) -> None:
        """G of the samples the allocator asks for, batched and split across ranks; their mean per prompt
        goes into the store."""
        wanted = [self.allocator.grad_norm_samples(p.record, g, [self.is_accepted(c) for c in g], purpose) for p, g in zip(prompts, groups)]
        if not any(wanted):
            return
        rank, size = world()
        costs = [sum(len(p.token_ids) + len(groups[i][j].token_ids) for j in w) for i, (p, w) in enumerate(zip(prompts, wanted))]
        mine = [i for i in rank_share(costs, rank, size) if wanted[i]]
        pairs = [(prompts[i].token_ids, groups[i][j]) for i in mine for j in wanted[i]]
        norms = grad_norms(
            self.local_policy(), [p for p, _ in pairs], [c for _, c in pairs], self.tokenizer.pad_token_id,
            self.allocator.param_slice, self.grad_norm_batch_size,
        ) if pairs else np.zeros(0)  # fmt: skip
        means, start = [], 0
        for i in mine:
            means.append((i, float(norms[start : start + len(wanted[i])].mean()), len(wanted[i])))
            start += len(wanted[i])
        for part in all_gather_objects(means):
            for i, mean, count in part:
                self.store.record_grad_norms(prompts[i].record.uid, GradNormObservation(epoch, purpose, mean, count))

    def check_allocation(self, allocation: Allocation, request: AllocationRequest) -> None:
        """An allocator's n_i must be non-negative integers, one per prompt, within its budget (it may
        leave part of it unspent, never spend more)."""
        samples = np.asarray(allocation.samples)
        budget = self.allocator.main_budget(request)
        if samples.shape != (len(request.prompts),) or (samples < 0).any() or int(samples.sum()) > budget:
            raise RuntimeError(f"{type(self.allocator).__name__} returned an invalid allocation (shape {samples.shape}, sum {samples.sum()}, budget {budget})")
        allocation.samples = samples.astype(np.int64)
        checks = all_gather_objects(allocation.samples.tolist())
        if any(c != checks[0] for c in checks):
            raise RuntimeError(f"epoch {request.epoch}: ranks computed different allocations; they must see the same statistics")

    def weigh(self, prompts: list[Prompt], groups: list[list[Completion]]) -> tuple[list[Rollout], dict[str, float]]:
        """Advantages from the algorithm on every sample of the epoch; the rollouts it keeps."""
        flat = [(i, c) for i, g in enumerate(groups) for c in g]
        if not flat:
            return [], {"rollout/kept": 0.0}
        rewards = torch.tensor([c.reward for _, c in flat], dtype=torch.float32)
        accepted = torch.tensor([self.is_accepted(c) for _, c in flat])
        advantages, keep, metrics = self.rollout_advantages(rewards, accepted, torch.tensor([i for i, _ in flat]))
        rollouts = [
            Rollout(prompts[i].token_ids, c.token_ids, c.reward, float(a), i, c.logprobs)
            for (i, c), a, k in zip(flat, advantages.tolist(), keep.tolist())
            if k and c.token_ids
        ]
        metrics.update({
            "rollout/kept": float(len(rollouts)),
            "rollout/kept_fraction": len(rollouts) / len(flat),
            "rollout/informative_samples": float(sum(r.advantage != 0 for r in rollouts)),  # carry a gradient
        })  # fmt: skip
        return rollouts, metrics

    def rollout_advantages(self, rewards: torch.Tensor, accepted: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(advantages [B], keep [B], metrics to log) for the epoch's samples; groups are prompts."""
        raise NotImplementedError

    @torch.no_grad()
    def recompute_old_logprobs(self, rollouts: list[Rollout]) -> float:
        """π_old = the trainer's policy before the first update; returns mean |sampler − trainer| log-prob."""
        pad, total_diff, total_tokens = self.tokenizer.pad_token_id, 0.0, 0
        for start in range(0, len(rollouts), self.logprob_batch_size):  # equal counts on every rank
            chunk = rollouts[start : start + self.logprob_batch_size]
            batch = collate_rollouts(chunk, pad)
            logprobs, _ = batch_logprobs(self.model, {k: v.to(self.device) for k, v in batch.items()}, self.loss_temperature)
            logprobs, mask = logprobs.float().cpu(), batch["response_mask"]
            total_diff += float(((logprobs - batch["sampler_logprobs"]).abs() * mask).sum())
            total_tokens += int(mask.sum())
            for row, item in enumerate(chunk):
                item.old_logprobs = logprobs[row][mask[row]].tolist()
        sums = self.trainer.strategy.reduce(torch.tensor([total_diff, total_tokens], dtype=torch.float64, device=self.device), reduce_op="sum")
        return float(sums[0] / max(float(sums[1]), 1.0))

    # ------------------------------------------------------------------ what the epoch reports
    def epoch_metrics(self, result: EpochRollouts, draw: Draw, weighing: dict, before: dict, left_out: int, seconds: float):
        """Scalars and histograms describing the epoch (pure bookkeeping; see README's TensorBoard table)."""
        spent = {p: self.budget.total[p].samples - before["total"][p]["samples"] for p in ("pilot", "train")}
        tokens = {p: self.budget.total[p].tokens - before["total"][p]["tokens"] for p in ("pilot", "train")}
        generated = spent["pilot"] + spent["train"]
        scored = draw.groups if self.allocator.keep_pilots else [p + g for p, g in zip(draw.pilots, draw.groups)]
        accepted = self.accepted(result.groups)
        metrics = {
            **rollout_metrics(result.groups, accepted),
            **outcome_metrics(scored),
            **allocation_metrics(result.allocation, [len(g) for g in result.groups], [len(p) for p in draw.pilots]),
            **weighing,
            "rollout/informative_sample_share": weighing.get("rollout/informative_samples", 0.0) / max(generated, 1),
            "rollout/untrained_sample_share": 1.0 - weighing.get("rollout/kept", 0.0) / max(generated, 1),
            "rollout/informative_groups": float(self.informative_groups(result.groups)),
            "allocation/unspent_samples": float(draw.budget - int(np.asarray(result.allocation.samples).sum())),
            "budget/samples_generated": float(self.budget.training_samples),
            "budget/tokens_generated": float(self.budget.tokens("pilot", "train")),
            "budget/pilot_samples": float(self.budget.samples("pilot")),
            "budget/epoch_samples": float(generated),
            "budget/epoch_pilot_samples": float(spent["pilot"]),
            "budget/epoch_tokens": float(tokens["pilot"] + tokens["train"]),
            "allocation/prompts_tracked": float(len(self.store)),
            "time/estimate_seconds": self._estimate_seconds,
            "time/rollout_seconds": seconds,
            "rollout/skipped_update": float(not result.rollouts),
        }
        if world()[1] > 1:
            metrics.update(self.distribution_metrics(result, left_out, before))
        rates = acceptance_rates([sum(a) for a in accepted], [len(a) for a in accepted])
        histograms = {
            "rollout/acceptance_rate_per_prompt": rates[np.isfinite(rates)],
            "rollout/samples_per_prompt": np.array([len(g) for g in result.groups]),
            "allocation/samples_per_prompt": result.allocation.samples,
            **{f"allocation/{k}": v for k, v in result.allocation.histograms.items()},
        }
        if result.allocation.acceptance_rate is not None:
            histograms["allocation/estimated_acceptance_rate"] = np.asarray(result.allocation.acceptance_rate)
        if result.allocation.grad_norm is not None:
            histograms["allocation/estimated_grad_norm"] = np.asarray(result.allocation.grad_norm)
        return metrics, histograms

    def distribution_metrics(self, result: EpochRollouts, left_out: int, before: dict) -> dict[str, float]:
        """Per rank: samples it generated this epoch, tokens it trains on, a checksum of its n_i."""
        generated = sum(self.budget.local[p].samples - before["local"][p]["samples"] for p in ("pilot", "train"))
        tokens = sum(len(r.prompt_ids) + len(r.response_ids) for r in result.rollouts)
        crc = zlib.crc32(np.asarray(result.allocation.samples, dtype=np.int64).tobytes()) % (1 << 24)  # exact in float32
        metrics = {"distributed/world_size": float(world()[1]), "distributed/dropped_for_balance": float(left_out)}
        for r, (samples, train_tokens, checksum) in enumerate(all_gather_objects((generated, tokens, crc))):
            metrics[f"distributed/rank{r}_generated_samples"] = float(samples)
            metrics[f"distributed/rank{r}_train_tokens"] = float(train_tokens)
            metrics[f"distributed/rank{r}_allocation_crc"] = float(checksum)
        return metrics

    def _log_epoch(self, result: EpochRollouts) -> None:
        m = result.metrics
        faults = ", ".join(f"{int(m[k])} {k.split('/')[-1]}" for k in ("verifier/timeout", "verifier/error") if m.get(k))
        log.info(
            "epoch %d: %d prompts, %d samples (budget %d%s), acceptance %.3f, %s%s, %.1fs",
            result.epoch, len(result.prompts), m["budget/epoch_samples"], self.samples_per_prompt * len(result.prompts),
            f" + {int(m['budget/epoch_pilot_samples'])} pilots" if not self.allocator.keep_pilots and m["budget/epoch_pilot_samples"]
            else f", {int(m['budget/epoch_pilot_samples'])} of them pilots" if m["budget/epoch_pilot_samples"] else "",
            m["rollout/acceptance_rate"],
            f"{int(m['rollout/kept'])} rollouts to train on" if result.rollouts or world()[1] > 1 else "nothing to train on: this epoch's update is skipped",
            f", verifier faults: {faults}" if faults else "", m["time/rollout_seconds"],
        )  # fmt: skip

    # ------------------------------------------------------------------ checkpoints
    def rollout_state(self) -> dict:
        return {**super().rollout_state(), "allocator": self.allocator.state_dict(), "prompt_stats": self.store.state_dict()}

    def load_rollout_state(self, state: dict) -> None:
        super().load_rollout_state(state)
        self.allocator.load_state_dict(state.get("allocator", {}))
        self.store.load_state_dict(state.get("prompt_stats", {}))
