"""RolloutAlgorithm: the learner that produces its own training data, one EM iteration per epoch
(docs/method.md §1, §3).

:meth:`RolloutAlgorithm.collect_epoch` is the whole E-step, top to bottom, called from the learner's own
``on_train_epoch_start``::

    data.epoch_prompts(epoch) [+ data.more_prompts(epoch, 0, extra candidates)]
    round 0, 1, …  (``draw``):  allocator.plan_pilots, stage after stage → collect(pilots)
                                → allocator.allocate → n_i → collect(main draws)
                   while the allocator asks for a refill (or dynamic sampling misses groups):
                                data.more_prompts(epoch, round, k)
    → weigh (advantages, which rollouts to keep) → this rank's share → π_old and mismatch weights
    → EpochRollouts (typed) → the buffer the data module serves

``collect`` is the :class:`~gvmlit.collector.RolloutCollector` (sample → verify → gather → count) plus
the bookkeeping allocators read: every scored batch goes into the :class:`PromptStatsStore`, with the
gradient norms the allocator asked for. RAFT and GRPO differ only in ``rollout_advantages`` (how a
rollout is weighed), ``policy_loss`` and what makes a group useful to them.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from gvmlit.algorithms.base import PolicyModule
from gvmlit.algorithms.epoch import EpochRollouts, Round
from gvmlit.algorithms.report import EpochContext, epoch_report, log_epoch, mismatch_metrics
from gvmlit.algorithms.settings import EvaluationSettings, LossSettings, Optimization, RolloutSettings
from gvmlit.allocation import Allocation, AllocationRequest, BudgetAllocator, PromptStatsStore, UniformAllocator
from gvmlit.allocation.base import PilotRequest
from gvmlit.allocation.gradnorm import grad_norms
from gvmlit.allocation.store import GradNormObservation, SamplePurpose, Visit
from gvmlit.collate import collate_rollouts
from gvmlit.errors import GvmlitError
from gvmlit.forward import batch_logprobs
from gvmlit.groups import UsefulGroup, group_carries_gradient
from gvmlit.losses import clipped_surrogate, correction_weights, mismatch_statistics, processed_logprobs
from gvmlit.parallel import all_gather_objects, rank_rollouts, rank_share, world
from gvmlit.policy import PolicyLoader
from gvmlit.records import Completion, Prompt, Rollout
from gvmlit.sampling import Sampler
from gvmlit.verifiers import Verifier

log = logging.getLogger("gvmlit")


class RolloutAlgorithm(PolicyModule):
    """A learner trained on its own rollouts, with a per-prompt sampling budget.

    Subclasses say what makes a prompt's group of samples useful to them (``useful_group``, passed to
    allocators): ``mixed`` rewards (GRPO) or at least one ``accepted`` sample (RAFT).

    Args:
        policy, sampler, verifier, eval_sampler: as ``PolicyModule``.
        allocator: decides n_i per prompt (default: ``UniformAllocator``).
        rollout: the budget and the E-step (samples per prompt, acceptance, rounds, pilot stages, …).
        loss: how the loss is computed (clip, ratio level, aggregation, KL, mismatch correction).
        optim: the optimiser.
        evaluation: held-out evaluation.
    """

    useful_group: UsefulGroup = "mixed"

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        sampler: Sampler | None = None,
        verifier: Verifier | None = None,
        allocator: BudgetAllocator | None = None,
        eval_sampler: Sampler | None = None,
        rollout: RolloutSettings = RolloutSettings(),
        loss: LossSettings = LossSettings(),
        optim: Optimization = Optimization(),
        evaluation: EvaluationSettings = EvaluationSettings(),
    ) -> None:
        super().__init__(policy=policy, sampler=sampler, verifier=verifier, eval_sampler=eval_sampler, optim=optim, evaluation=evaluation, loss=loss)
        self.allocator = allocator if allocator is not None else UniformAllocator()
        self.rollout = rollout
        self.store = PromptStatsStore()
        self.epoch_result: EpochRollouts | None = None  # the current epoch's E-step (what RolloutLogger logs)
        self._estimate_seconds = 0.0

    # ------------------------------------------------------------------ start-up
    def components(self) -> list:
        return [*super().components(), self.allocator]

    def collector_settings(self) -> dict:
        rollout = self.rollout
        return {
            "max_fault_fraction": rollout.max_fault_fraction, "acceptance_threshold": rollout.acceptance_threshold,
            "max_consecutive_timeouts": rollout.max_consecutive_timeouts,
        }  # fmt: skip

    @property
    def correction(self) -> str:
        """The mismatch correction in force: ``token``, ``sequence`` or ``off`` (``auto``: ``token`` for a
        sampler whose log-probs come from other kernels than the trainer's, e.g. vLLM)."""
        mode = self.loss.correction.mode
        return ("off" if self.sampler.exact_logprobs else "token") if mode == "auto" else mode

    @property
    def needs_trainer_logprobs(self) -> bool:
        """π_old (ratio losses) or the mismatch weights need the trainer's log-probs of every rollout."""
        return self.needs_old_logprobs or self.correction != "off"

    def check_compatibility(self) -> None:
        super().check_compatibility()
        if self.allocator.param_slice in ("embedding", "lm_head") and self.policy.has_adapters and self.allocator_needs_grad_norms():
            raise GvmlitError(
                f"{type(self.allocator).__name__} measures gradient norms on the {self.allocator.param_slice}, which LoRA "
                f"freezes: set its param_slice=trainable (the adapters), or train without policy.lora"
            )

    def allocator_needs_grad_norms(self) -> bool:
        return type(self.allocator).grad_norm_samples is not BudgetAllocator.grad_norm_samples

    # ------------------------------------------------------------------ the epoch
    def epoch_data(self, epoch: int) -> list[Rollout]:
        self.epoch_result = self.collect_epoch(epoch)
        return self.epoch_result.rollouts

    def on_train_epoch_end(self) -> None:
        """A run with a budget in samples (``rollout.max_samples``) ends with the epoch that reaches it (whose
        budget :meth:`collect_epoch` cut to what was left, so runs of different allocators end at nearly the same spend)."""
        limit = self.rollout.max_samples
        if limit is not None and self.budget.training_samples >= limit and not self.trainer.should_stop:
            log.info("%d training samples generated (rollout.max_samples=%d): stopping after this epoch", self.budget.training_samples, limit)
            self.trainer.should_stop = True

    def run_samples_left(self) -> int:
        """What is left of the run's budget in generated training samples (``rollout.max_samples``)."""
        return max(self.rollout.max_samples - self.budget.training_samples, 0)

    def collect_epoch(self, epoch: int) -> EpochRollouts:
        """One EM iteration's E-step: rounds of allocate → collect → weigh → π_old (module docstring)."""
        started, before = time.perf_counter(), self.budget.state_dict()
        self._estimate_seconds = 0.0
        per_epoch = self.data.prompts_per_epoch
        epoch_budget = self.rollout.samples_per_prompt * per_epoch
        if self.rollout.max_samples is not None:  # the run's last epoch spends only what is left of its budget
            epoch_budget = min(epoch_budget, self.run_samples_left())
        with self.random_stream(f"train:{epoch}"):
            prompts = self.data.epoch_prompts(epoch)
            extra = self.allocator.candidates(per_epoch) - per_epoch
            if extra > 0:  # candidates the allocator screens (round 0 of the extra streams)
                prompts = prompts + self.data.more_prompts(epoch, 0, extra, exclude={p.record.uid for p in prompts})
            rounds = [self.draw(prompts, epoch, 0, epoch_budget, epoch_budget, sampled=0)]
            for number in range(1, self.rollout.max_rounds):
                left = epoch_budget - sum(r.spent for r in rounds)
                count, beyond_budget = self.refill_wanted(rounds, left)
                if count <= 0:
                    break
                budget = self.rollout.samples_per_prompt * count if beyond_budget else min(left, self.rollout.samples_per_prompt * count)
                if self.rollout.max_samples is not None:  # dynamic sampling's rounds too stop at the run's budget
                    budget = min(budget, self.run_samples_left())
                    if budget <= 0:
                        break
                sampled = sum(int((r.allocation.samples > 0).sum()) for r in rounds)
                seen = {p.record.uid for r in rounds for p in r.prompts}
                more = self.data.more_prompts(epoch, number, count, exclude=seen)
                if not more:  # every training prompt is in this epoch already
                    break
                rounds.append(self.draw(more, epoch, number, budget, epoch_budget, sampled))
        epoch_round = Round.join(rounds)
        rollouts, weighing = self.weigh(epoch_round.prompts, epoch_round.groups)
        rollouts, left_out = rank_rollouts(rollouts)
        if self.needs_trainer_logprobs:  # every rank calls it: a sharded forward is a collective
            weighing.update(self.recompute_trainer_logprobs(rollouts))
        result = EpochRollouts(
            epoch, rollouts, [p.record for p in epoch_round.prompts], epoch_round.groups, epoch_round.allocation,
            len(rounds), self.global_step, started=started,
        )  # fmt: skip
        result.metrics, result.histograms = self.epoch_metrics(result, epoch_round, epoch_budget, weighing, before, left_out, time.perf_counter() - started)
        log_epoch(result, epoch_budget, self.allocator.keep_pilots)
        return result

    def refill_wanted(self, rounds: list[Round], left: int) -> tuple[int, bool]:
        """(further prompts to draw in another round, whether that round may spend beyond the epoch's
        budget): what the allocator asked for, while budget is left."""
        return (rounds[-1].allocation.refill if left > 0 else 0), False

    def draw(self, prompts: list[Prompt], epoch: int, number: int, budget: int, epoch_budget: int, sampled: int) -> Round:
        """One round: pilot stages → allocation → main draws for ``prompts``, within ``budget``."""
        started = time.perf_counter()
        records = [p.record for p in prompts]
        policy = self.rollout_policy(self.sampler)
        pilots: list[list[Completion]] = [[] for _ in prompts]
        for stage in range(self.rollout.max_pilot_stages):
            request = PilotRequest(records, self.store, epoch, stage, pilots, self.accepted(pilots), budget, number, self.useful_group)
            plan = self.check_pilots(self.allocator.plan_pilots(request), request)
            if not plan.any():
                break
            drawn = self.collect(policy, prompts, plan, "pilot", epoch)
            pilots = [p + d for p, d in zip(pilots, drawn)]
        request = AllocationRequest(
            records, pilots, self.accepted(pilots), budget, epoch, self.store, self.useful_group, number, epoch_budget,
            self.data.prompts_per_epoch, sampled,
        )  # fmt: skip
        allocation = self.allocator.allocate(request)
        self.check_allocation(allocation, request)
        self._estimate_seconds += time.perf_counter() - started
        drawn = self.collect(policy, prompts, allocation.samples, "train", epoch)
        keep = self.allocator.keep_pilots
        groups = [p + d for p, d in zip(pilots, drawn)] if keep else drawn
        spent = int(allocation.samples.sum()) + (int(request.pilot_counts.sum()) if keep else 0)
        return Round(list(prompts), pilots, groups, allocation, self.allocator.main_budget(request), spent)

    def informative_groups(self, groups: list[list[Completion]]) -> int:
        """Groups that carry a gradient for this learner (gvmlit.groups.carries_gradient)."""
        return sum(group_carries_gradient(g, self.useful_group) for g in groups)

    def collect(self, policy, prompts: list[Prompt], counts, purpose: SamplePurpose, epoch: int) -> list[list[Completion]]:
        """Sample and score ``counts[i]`` completions of ``prompts[i]``; record them in the store with
        the gradient norms the allocator asks for."""
        expected = [self.store.mean_response_tokens(p.record.uid) or self.sampler.max_new_tokens / 2 for p in prompts]
        groups = self.collector.collect(policy, prompts, counts, purpose, expected_response_tokens=expected)
        for prompt, group in zip(prompts, groups):
            if group:
                rewards = [c.reward for c in group]
                accepted = sum(c.accepted for c in group)
                tokens = sum(len(c.token_ids) for c in group)
                self.store.record_visit(prompt.record.uid, Visit(epoch, purpose, len(group), accepted, tokens, min(rewards), max(rewards)))
        started = time.perf_counter()
        self.record_grad_norms(prompts, groups, purpose, epoch)
        self._estimate_seconds += time.perf_counter() - started if purpose == "train" else 0.0
        return groups

    @staticmethod
    def accepted(groups: list[list[Completion]]) -> list[list[bool]]:
        return [[bool(c.accepted) for c in group] for group in groups]

    def record_grad_norms(self, prompts: list[Prompt], groups: list[list[Completion]], purpose: SamplePurpose, epoch: int) -> None:
        """G of the samples the allocator asks for, batched and split across ranks; their mean per prompt
        goes into the store."""
        wanted = [self.allocator.grad_norm_samples(p.record, g, [bool(c.accepted) for c in g], purpose) for p, g in zip(prompts, groups)]
        if not any(wanted):
            return
        rank, size = world()
        costs = [sum(len(p.token_ids) + len(groups[i][j].token_ids) for j in w) for i, (p, w) in enumerate(zip(prompts, wanted))]
        mine = [i for i in rank_share(costs, rank, size) if wanted[i]]
        pairs = [(prompts[i].token_ids, groups[i][j]) for i in mine for j in wanted[i]]
        norms = grad_norms(
            self.local_policy(), [p for p, _ in pairs], [c for _, c in pairs], self.tokenizer.pad_token_id,
            self.allocator.param_slice, self.rollout.grad_norm_batch_size,
        ) if pairs else np.zeros(0)  # fmt: skip
        means, start = [], 0
        for i in mine:
            means.append((i, float(norms[start : start + len(wanted[i])].mean()), len(wanted[i])))
            start += len(wanted[i])
        for part in all_gather_objects(means):
            for i, mean, count in part:
                self.store.record_grad_norms(prompts[i].record.uid, GradNormObservation(epoch, purpose, mean, count))

    def check_pilots(self, plan, request: PilotRequest) -> np.ndarray:
        """A pilot plan must be non-negative integers, one per prompt; kept pilots must fit the budget."""
        plan = np.asarray(plan)
        name = type(self.allocator).__name__
        if plan.shape != (len(request.prompts),) or (plan < 0).any() or not np.all(plan == np.round(plan)):
            raise GvmlitError(f"{name}.plan_pilots returned {plan.tolist()!r}: it must give one integer ≥ 0 per prompt ({len(request.prompts)})")
        plan = plan.astype(np.int64)
        if self.allocator.keep_pilots and int(request.pilot_counts.sum() + plan.sum()) > request.budget:
            raise GvmlitError(f"{name}.plan_pilots asked for {int(request.pilot_counts.sum() + plan.sum())} kept pilot samples, more than the round's budget {request.budget}")
        return plan

    def check_allocation(self, allocation: Allocation, request: AllocationRequest) -> None:
        """An allocator's n_i must be non-negative integers, one per prompt, within its budget (it may
        leave part of it unspent, never spend more)."""
        samples = np.asarray(allocation.samples)
        budget = self.allocator.main_budget(request)
        name = type(self.allocator).__name__
        if samples.shape != (len(request.prompts),) or (samples < 0).any() or int(samples.sum()) > budget or int(allocation.refill) < 0:
            raise GvmlitError(
                f"{name} returned an invalid allocation (shape {samples.shape}, sum {samples.sum()}, refill {allocation.refill}): it "
                f"must give one integer ≥ 0 per prompt ({len(request.prompts)}), summing to at most the budget {budget}"
            )
        allocation.samples = samples.astype(np.int64)
        checks = all_gather_objects((allocation.samples.tolist(), int(allocation.refill)))
        if any(c != checks[0] for c in checks):
            raise RuntimeError(f"epoch {request.epoch}: ranks computed different allocations; they must see the same statistics")

    def weigh(self, prompts: list[Prompt], groups: list[list[Completion]]) -> tuple[list[Rollout], dict[str, float]]:
        """Advantages from the algorithm on every sample of the epoch; the rollouts it keeps."""
        flat = [(i, c) for i, g in enumerate(groups) for c in g]
        if not flat:
            return [], {"rollout/kept": 0.0}
        useful = [group_carries_gradient(g, self.useful_group) for g in groups]
        rewards = torch.tensor([c.reward for _, c in flat], dtype=torch.float32)
        accepted = torch.tensor([bool(c.accepted) for _, c in flat])
        group_ids = torch.tensor([i for i, _ in flat])
        advantages, keep, metrics = self.rollout_advantages(rewards, accepted, group_ids, torch.tensor(useful)[group_ids])
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

    def rollout_advantages(self, rewards, accepted, group_ids, useful) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(advantages [B], keep [B], metrics to log) for the epoch's samples; groups are prompts, ``useful``
        [B] says whether a sample's group carries a gradient for this learner."""
        raise NotImplementedError

    @torch.no_grad()
    def recompute_trainer_logprobs(self, rollouts: list[Rollout]) -> dict[str, float]:
        """π_old = the trainer's policy before the first update; the sampled tokens' log-probs under the
        sampler's own processing, compared with the sampler's (the mismatch), and the correction weights."""
        pad, temperature = self.tokenizer.pad_token_id, self.sampler.temperature
        settings = self.loss.correction
        stats: list[tuple[int, dict[str, float], int]] = []  # (group, statistics, tokens) per chunk row
        for start in range(0, len(rollouts), self.rollout.logprob_batch_size):  # equal counts on every rank
            chunk = rollouts[start : start + self.rollout.logprob_batch_size]
            batch = collate_rollouts(chunk, pad)
            device_batch = {k: v.to(self.device) for k, v in batch.items()}
            logprobs, logits = batch_logprobs(self.model, device_batch, self.loss_temperature)
            targets = device_batch["input_ids"][:, 1:]
            sampler = self.sampler
            trainer = processed_logprobs(logits, targets, temperature, sampler.top_k, sampler.top_p, sampler.min_p, sampler.min_p_first).float().cpu()
            logprobs, mask = logprobs.float().cpu(), batch["response_mask"]
            weights = None
            if self.correction != "off":
                weights = correction_weights(trainer, batch["sampler_logprobs"], mask, self.correction, settings.action, settings.cap)
            for row, item in enumerate(chunk):
                item.old_logprobs = logprobs[row][mask[row]].tolist()
                if weights is not None:
                    item.correction = weights[row][mask[row]].tolist()
                row_mask = mask[row : row + 1]
                row_weights = None if weights is None else weights[row : row + 1]
                stats.append((item.group, mismatch_statistics(trainer[row : row + 1], batch["sampler_logprobs"][row : row + 1], row_mask, row_weights), int(row_mask.sum())))
        return mismatch_metrics(stats)

    # ------------------------------------------------------------------ what the epoch reports
    def epoch_metrics(self, result: EpochRollouts, epoch_round: Round, epoch_budget: int, weighing: dict, before: dict, left_out: int, seconds: float):
        """Scalars and histograms describing the epoch (gvmlit.algorithms.report; README's TensorBoard table)."""
        return epoch_report(
            result, epoch_round, EpochContext(
                epoch_budget, self.data.prompts_per_epoch, self.allocator.keep_pilots, self.useful_group, self.budget, before,
                len(self.store), self._estimate_seconds, seconds, left_out,
            ), weighing,
        )  # fmt: skip

    # ------------------------------------------------------------------ checkpoints
    def rollout_state(self) -> dict:
        return {**super().rollout_state(), "allocator": self.allocator.state_dict(), "prompt_stats": self.store.state_dict()}

    def load_rollout_state(self, state: dict) -> None:
        super().load_rollout_state(state)
        self.allocator.load_state_dict(state.get("allocator", {}))
        self.store.load_state_dict(state.get("prompt_stats", {}))


def clipped_policy_loss(logprobs: torch.Tensor, batch: dict[str, torch.Tensor], loss: LossSettings):
    """The PPO clipped surrogate against π_old (RAFT++ and GRPO), token- or sequence-level (GSPO), with
    its diagnostics per token."""
    sequence = loss.ratio == "sequence"
    low, high = (loss.sequence_clip_low, loss.sequence_clip_high) if sequence else (loss.clip_low, loss.clip_high)
    per_token, clipped, ratio = clipped_surrogate(
        logprobs, batch["old_logprobs"], batch["advantages"], low, high, loss.dual_clip, loss.ratio, batch["response_mask"]
    )
    return per_token, {"clip_fraction": clipped.detach(), "ratio": ratio}

