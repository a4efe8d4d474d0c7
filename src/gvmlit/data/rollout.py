"""RolloutDataModule: every epoch, allocate → sample → verify → weight, from the live policy.

One epoch of training is one iteration of the EM loop (method.md §1, §3):

    prompts of the epoch → allocator.estimate (pilot samples, optional) → allocator.allocate → n_i
    → sampler.generate([(prompt, n_i)]) → verifier.score → module.rollout_advantages → DataLoader

The dataset is rebuilt at the start of every epoch (the CLI sets ``reload_dataloaders_every_n_epochs=1``)
from the model being trained. Every generated sample and token is counted, pilot samples included.

With several processes (FSDP2, :mod:`gvmlit.parallel`) every rank holds the same prompts; each
``sample`` request is split across ranks balanced by expected tokens, each rank generates and verifies
its share, and the scored samples are gathered back to every rank. Allocators, the per-prompt store
and the budget counters therefore see the same global data on every rank and compute the same n_i
(checked each epoch). The epoch's rollouts are then split across ranks balanced by tokens, with equal
counts so that every rank takes the same number of optimiser steps; ``batch_size`` is per rank.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from contextlib import contextmanager
from functools import partial
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Sampler as IndexSampler

from gvmlit.allocation.base import BudgetAllocator, PromptStats, ScoredCompletion
from gvmlit.allocation.store import PromptStatsStore
from gvmlit.allocation.uniform import UniformAllocator
from gvmlit.data.arithmetic import ArithmeticTask
from gvmlit.data.collate import Rollout, collate_rollouts
from gvmlit.data.records import PromptRecord
from gvmlit.data.sources import PromptSource
from gvmlit.errors import GvmlitError
from gvmlit.forward import batch_logprobs
from gvmlit.metrics import acceptance_rates
from gvmlit.parallel import all_gather_objects, all_reduce_sum, balanced_partition, rank_share, world
from gvmlit.policy import max_model_length
from gvmlit.sampling.base import Sampler
from gvmlit.sampling.hf import HFSampler
from gvmlit.verifiers.arithmetic import ArithmeticVerifier
from gvmlit.verifiers.base import Verifier

log = logging.getLogger("gvmlit")

#: purposes generated samples are counted under
PURPOSES = ("pilot", "train", "eval")


def _own_generator(seed: int) -> torch.Generator:
    """A DataLoader draws a base seed from its generator on every ``iter()``; with the global one, how
    often Lightning re-creates iterators (e.g. when resuming) would shift the sampling stream."""
    return torch.Generator().manual_seed(seed)


class RepeatedShuffle(IndexSampler):
    """Indices of ``size`` items, shuffled, repeated ``passes`` times (several updates per rollout batch)."""

    def __init__(self, size: int, passes: int, seed: int) -> None:
        self.size, self.passes, self.seed = size, passes, seed

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.passes):
            yield from rng.permutation(self.size).tolist()

    def __len__(self) -> int:
        return self.size * self.passes


class RolloutDataModule(LightningDataModule):
    """Builds the weighted rollout dataset of each epoch from the live policy.

    Args:
        source: where problems and answers come from (default: the built-in ArithmeticTask).
        sampler: draws completions (default: HFSampler).
        verifier: scores completions (default: ArithmeticVerifier).
        allocator: decides n_i per prompt (default: UniformAllocator).
        prompts_per_epoch: prompts taken from the training split each epoch (the iteration's prompt set).
        samples_per_prompt: average samples per prompt; the epoch's budget is N = this × prompts_per_epoch.
        batch_size: rollouts per optimiser step (mini-batch).
        update_epochs: passes over each epoch's rollouts (several optimiser steps per rollout batch).
        prompt_template: Python format string applied to each problem (``{problem}``).
        system_prompt: system message, used when the policy applies a chat template.
        acceptance_threshold: a completion is accepted when its reward is at least this.
        overlong_prompts: prompts too long for the model with ``max_new_tokens``: ``error`` or ``skip`` (counted).
        eval_source: where validation / test problems come from (default: ``source``), e.g.
            ``BenchmarkFiles`` for MATH-500, AIME24, … reported per benchmark.
        eval_sampler: sampling settings for evaluation (default: ``sampler``); greedy pass@1 always uses argmax.
        val_size: held-out prompts evaluated each epoch (None = the whole validation split).
        val_samples: n, sampled completions per validation prompt for mean@n, pass@k, maj@k (0 = greedy only).
        eval_ks: the k of pass@k and maj@k (default: 1 and n).
        val_batch_size: validation prompts per batch.
        seed: seed of the prompt order.
    """

    def __init__(
        self,
        source: PromptSource | None = None,
        sampler: Sampler | None = None,
        verifier: Verifier | None = None,
        allocator: BudgetAllocator | None = None,
        prompts_per_epoch: int = 64,
        samples_per_prompt: int = 8,
        batch_size: int = 64,
        update_epochs: int = 1,
        prompt_template: str = "{problem}",
        system_prompt: str | None = None,
        acceptance_threshold: float = 1.0,
        overlong_prompts: Literal["error", "skip"] = "error",
        eval_source: PromptSource | None = None,
        eval_sampler: Sampler | None = None,
        val_size: int | None = None,
        val_samples: int = 4,
        eval_ks: list[int] | None = None,
        val_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if "{problem}" not in prompt_template:
            raise GvmlitError(f"data.prompt_template must contain '{{problem}}', got {prompt_template!r}")
        if overlong_prompts not in ("error", "skip"):
            raise GvmlitError(f"data.overlong_prompts must be 'error' or 'skip', got {overlong_prompts!r}")
        self.source = source if source is not None else ArithmeticTask()
        self.sampler = sampler if sampler is not None else HFSampler()
        self.verifier = verifier if verifier is not None else ArithmeticVerifier()
        self.allocator = allocator if allocator is not None else UniformAllocator()
        self.prompts_per_epoch = prompts_per_epoch
        self.samples_per_prompt = samples_per_prompt
        self.batch_size = batch_size
        self.update_epochs = update_epochs
        self.prompt_template = prompt_template
        self.system_prompt = system_prompt
        self.acceptance_threshold = acceptance_threshold
        self.overlong_prompts = overlong_prompts
        self.eval_source = eval_source if eval_source is not None else self.source
        self.eval_sampler = eval_sampler if eval_sampler is not None else self.sampler
        self.val_size = val_size
        self.val_samples = val_samples
        self.eval_ks = eval_ks
        self.val_batch_size = val_batch_size
        self.seed = seed
        #: cumulative generated samples and tokens by purpose (pilot, train, eval)
        self.counters: dict[str, int] = {f"{p}_{u}": 0 for p in PURPOSES for u in ("samples", "tokens")}
        #: what this rank generated itself, by purpose (equal to ``counters`` on one process)
        self.local_counters: dict[str, int] = dict(self.counters)
        #: per-prompt acceptance history, samples spent and G estimates, across epochs
        self.store = PromptStatsStore()
        #: scalars and histograms describing the last rollout, logged by the LightningModule
        self.epoch_metrics: dict[str, float] = {}
        self.epoch_histograms: dict[str, np.ndarray] = {}
        self._prompt_ids: dict[str, list[int]] = {}
        self._train: list[PromptRecord] | None = None
        self._epoch_loader: tuple[int, DataLoader] | None = None
        self._base_seed = 0
        self.skipped_prompts = 0
        self._local_train_tokens = 0  # tokens of the rollouts this rank trains on this epoch
        self._allocation_checksums: list[int] = []  # of the n_i every rank computed this epoch

    # ------------------------------------------------------------------ policy access
    @property
    def module(self):
        if self.trainer is None or self.trainer.lightning_module is None:
            raise RuntimeError("the RolloutDataModule needs a Trainer with a policy module attached")
        return self.trainer.lightning_module

    def _policy(self):
        module = self.module
        return module.model, module.tokenizer, module.use_chat_template

    # ------------------------------------------------------------------ prompts
    def format_prompt(self, record: PromptRecord, tokenizer, use_chat_template: bool) -> list[int]:
        text = self.prompt_template.format(problem=record.problem)
        if use_chat_template:
            messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + [
                {"role": "user", "content": text}
            ]
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return tokenizer(text, add_special_tokens=False)["input_ids"]
        return tokenizer(text)["input_ids"]

    def prompt_ids(self, record: PromptRecord) -> list[int]:
        if record.uid not in self._prompt_ids:
            _, tokenizer, chat = self._policy()
            self._prompt_ids[record.uid] = self.format_prompt(record, tokenizer, chat)
        return self._prompt_ids[record.uid]

    def _fits(self, record: PromptRecord, limit: int) -> bool:
        length = len(self.prompt_ids(record))
        if length + self.sampler.max_new_tokens <= limit:
            return True
        if self.overlong_prompts == "error":
            where = record.meta.get("source", record.uid)
            raise GvmlitError(
                f"prompt {where} has {length} tokens; with max_new_tokens={self.sampler.max_new_tokens} it exceeds "
                f"the model's maximum length {limit} (set data.overlong_prompts=skip to drop such prompts)"
            )
        return False

    def train_records(self) -> list[PromptRecord]:
        if self._train is None:
            limit = max_model_length(self.module.model)
            records = self.source.records("train")
            if not records:
                raise GvmlitError("the prompt source has no training prompts")
            kept = [r for r in records if self._fits(r, limit)]
            self.skipped_prompts = len(records) - len(kept)
            if self.skipped_prompts:
                log.warning("skipped %d of %d training prompts longer than the limit", self.skipped_prompts, len(records))
            if len(kept) < self.prompts_per_epoch:
                raise GvmlitError(
                    f"data.prompts_per_epoch={self.prompts_per_epoch} but only {len(kept)} training prompts are usable"
                )
            self._train = kept
        return self._train

    def epoch_prompts(self, epoch: int) -> list[PromptRecord]:
        """The prompts of ``epoch``: consecutive slices of seeded permutations of the training split."""
        records = self.train_records()
        n, orders = len(records), {}
        positions = range(epoch * self.prompts_per_epoch, (epoch + 1) * self.prompts_per_epoch)
        for g in positions:
            if g // n not in orders:
                orders[g // n] = np.random.default_rng([self.seed, g // n]).permutation(n)
        return [records[orders[g // n][g % n]] for g in positions]

    # ------------------------------------------------------------------ the RolloutEngine protocol
    @property
    def epoch(self) -> int:
        """The epoch being (or about to be) trained. Lightning's ``current_epoch`` still names the last
        completed epoch when a resumed run first asks for its loader; ``processed`` is already right."""
        return self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0

    def is_accepted(self, reward: float) -> bool:
        return reward >= self.acceptance_threshold

    def sample(
        self,
        prompts: Sequence[PromptRecord],
        num_samples: Sequence[int],
        purpose: str,
        greedy: bool = False,
    ) -> list[list[ScoredCompletion]]:
        """Sample and verify ``num_samples[i]`` completions of ``prompts[i]``, counted under ``purpose``."""
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES}")
        module, tokenizer = self.module, self.module.tokenizer
        sampler = self.eval_sampler if purpose == "eval" else self.sampler
        # the rollout weights: the engine syncs them itself (vLLM), or an unsharded local policy
        policy = module.model if sampler.accepts_sharded_policy else module.local_policy()
        ids = [self.prompt_ids(p) for p in prompts]
        rank, size = world()
        costs = [n * (len(ids[i]) + self._expected_response_tokens(prompts[i])) for i, n in enumerate(num_samples)]
        mine = rank_share(costs, rank, size)  # this rank's prompts, balanced by expected tokens
        sampler.prepare(policy)
        try:
            groups = sampler.generate(
                policy, tokenizer, [ids[i] for i in mine], [num_samples[i] for i in mine], greedy=greedy,
                desc=f"{purpose}: sampling",
            )  # fmt: skip
        finally:
            sampler.release()
        texts = [c.text for group in groups for c in group]
        references = [prompts[i].answer for i, group in zip(mine, groups) for _ in group]
        rewards = iter(self.verifier.score(texts, references, desc=f"{purpose}: verifying"))
        local = [
            [ScoredCompletion(c.token_ids, c.text, c.logprobs, c.finish_reason, next(rewards)) for c in group]
            for group in groups
        ]
        self.local_counters[f"{purpose}_samples"] += sum(len(g) for g in local)
        self.local_counters[f"{purpose}_tokens"] += sum(len(c.token_ids) for g in local for c in g)
        scored: list[list[ScoredCompletion]] = [[] for _ in prompts]
        for indices, part in all_gather_objects((mine, local)):  # every rank gets every rank's samples
            for i, group in zip(indices, part):
                scored[i] = group
        self.counters[f"{purpose}_samples"] += sum(len(g) for g in scored)
        self.counters[f"{purpose}_tokens"] += sum(len(c.token_ids) for g in scored for c in g)
        if purpose != "eval":
            for prompt, group in zip(prompts, scored):
                accepted = sum(self.is_accepted(c.reward) for c in group)
                self.store.record_samples(prompt.uid, self.epoch, len(group), accepted, sum(len(c.token_ids) for c in group))
        return scored

    def grad_norms(self, prompts, completions, param_slice="embedding", batch_size=64):
        """‖∇_θs (−log π(y|x))‖₂ of every completion, batched; one array per prompt. Under several
        processes each rank computes a token-balanced share of the prompts and the results are gathered."""
        from gvmlit.allocation.gradnorm import grad_norms_of_rollouts  # gradnorm imports gvmlit.data

        policy = self.module.local_policy()
        rank, size = world()
        costs = [sum(len(self.prompt_ids(p)) + len(c.token_ids) for c in group) for p, group in zip(prompts, completions)]
        mine = rank_share(costs, rank, size)
        rollouts = [
            Rollout(self.prompt_ids(prompts[i]), c.token_ids, c.reward, 0.0, i) for i in mine for c in completions[i]
        ]
        norms = grad_norms_of_rollouts(policy, rollouts, self.module.tokenizer.pad_token_id, param_slice, batch_size)
        sizes = np.cumsum([len(completions[i]) for i in mine])[:-1]
        local = np.split(norms, sizes) if mine else []
        result: list[np.ndarray] = [np.zeros(0) for _ in prompts]
        for indices, part in all_gather_objects((mine, local)):
            for i, values in zip(indices, part):
                result[i] = values
        return result

    def _expected_response_tokens(self, prompt: PromptRecord) -> float:
        """Mean response length seen for this prompt so far, else half the length limit (load balancing)."""
        entry = self.store.prompts.get(prompt.uid)
        if entry is not None and entry.samples:
            return entry.tokens / entry.samples
        return self.sampler.max_new_tokens / 2

    # ------------------------------------------------------------------ the epoch's rollouts
    @property
    def samples_generated(self) -> int:
        """Training-side generated samples so far (pilot + train), the x-axis of sample efficiency."""
        return self.counters["pilot_samples"] + self.counters["train_samples"]

    @property
    def tokens_generated(self) -> int:
        return self.counters["pilot_tokens"] + self.counters["train_tokens"]

    def train_dataloader(self) -> DataLoader:
        # The epoch's sampling has its own random stream, seeded by (data seed, epoch): a resumed run
        # draws exactly what an uninterrupted one would, whatever else consumed random numbers.
        epoch = self.epoch
        if self._epoch_loader is not None and self._epoch_loader[0] == epoch:
            # Lightning asks twice for the first epoch of a resumed run: sample it once
            return self._epoch_loader[1]
        with self._random_stream(f"train:{epoch}"):
            loader = self._build_train_dataloader()
        self._epoch_loader = (epoch, loader)
        return loader

    def setup(self, stage: str) -> None:
        # the run's seed (seed_everything) enters every sampling stream, with the data seed
        self._base_seed = torch.initial_seed()
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1 and trainer._accelerator_connector.use_distributed_sampler:
            raise GvmlitError(
                "RolloutDataModule splits rollouts across ranks itself: set trainer.use_distributed_sampler=false "
                "(the gvmlit CLI's default)"
            )

    @contextmanager
    def _random_stream(self, name: str):
        """Run the block on its own torch random stream seeded by (run seed, data seed, name); the
        global stream is restored afterwards."""
        device = next(self.module.model.parameters()).device
        rank, size = world()
        if size > 1:  # ranks generate different prompts: their draws must not be the same numbers
            name = f"{name}:rank{rank}"
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(zlib.crc32(f"{self._base_seed}:{self.seed}:{name}".encode()))
            yield

    def _build_train_dataloader(self) -> DataLoader:
        epoch = self.epoch
        module = self.module
        if self.trainer.fit_loop.done:
            # Lightning asks for the loader when resuming a finished run; generate nothing
            return self._loader([], seed=0)
        prompts = self.epoch_prompts(epoch)
        budget = self.samples_per_prompt * len(prompts)
        counted_before = (self.samples_generated, self.tokens_generated, self.counters["pilot_samples"])

        start = self.epoch_started = time.perf_counter()
        local_before = dict(self.local_counters)
        stats = self.allocator.estimate(prompts, self)
        estimate_seconds = time.perf_counter() - start
        remaining = max(budget - stats.budget_spent, 0)
        allocation = np.asarray(self.allocator.allocate(stats, remaining), dtype=np.int64)
        if allocation.shape != (len(prompts),) or allocation.sum() != remaining or (allocation < 0).any():
            raise RuntimeError(
                f"{type(self.allocator).__name__} returned an invalid allocation (sum {allocation.sum()}, budget {remaining})"
            )
        allocations = all_gather_objects(allocation.tolist())
        if any(a != allocations[0] for a in allocations):
            raise RuntimeError(f"epoch {epoch}: ranks computed different allocations; they must see the same statistics")
        self._allocation_checksums = [zlib.crc32(np.asarray(a, dtype=np.int64).tobytes()) % (1 << 24) for a in allocations]
        drawn = self.sample(prompts, allocation.tolist(), purpose="train")
        start_observe = time.perf_counter()
        self.allocator.observe(prompts, drawn, self)
        estimate_seconds += time.perf_counter() - start_observe
        groups = drawn
        if stats.pilot is not None:  # allocators that keep their pilot samples for training
            groups = [list(pilot) + list(group) for pilot, group in zip(stats.pilot, drawn)]
        rollouts, metrics = self._weigh(prompts, groups, module)
        rollout_seconds = time.perf_counter() - start
        metrics.update(self._distribution_metrics(local_before))

        accepted = np.array([sum(self.is_accepted(c.reward) for c in g) for g in groups])
        sizes = np.array([len(g) for g in groups])
        rates = acceptance_rates(accepted, sizes)
        sampled = sizes > 0
        lengths = [len(c.token_ids) for g in groups for c in g]
        self.epoch_metrics = {
            "rollout/acceptance_rate": float(np.nanmean(rates)) if sampled.any() else 0.0,
            "rollout/reward": float(np.mean([c.reward for g in groups for c in g])) if lengths else 0.0,
            "rollout/prompts_all_accepted": float(np.mean(rates[sampled] == 1.0)) if sampled.any() else 0.0,
            "rollout/prompts_none_accepted": float(np.mean(rates[sampled] == 0.0)) if sampled.any() else 0.0,
            "rollout/prompts_without_samples": float(np.mean(~sampled)),
            "rollout/samples": float(sizes.sum()),
            "rollout/accepted": float(accepted.sum()),
            "rollout/response_length": float(np.mean(lengths)) if lengths else 0.0,
            "rollout/truncated": float(np.mean([c.finish_reason == "length" for g in groups for c in g])) if lengths else 0.0,
            "budget/samples_generated": float(self.samples_generated),
            "budget/tokens_generated": float(self.tokens_generated),
            "budget/pilot_samples": float(self.counters["pilot_samples"]),
            "budget/epoch_samples": float(self.samples_generated - counted_before[0]),
            "budget/epoch_tokens": float(self.tokens_generated - counted_before[1]),
            "budget/epoch_pilot_samples": float(self.counters["pilot_samples"] - counted_before[2]),
            "time/estimate_seconds": estimate_seconds,
            "time/rollout_seconds": rollout_seconds,
            "data/skipped_prompts": float(self.skipped_prompts),
            **metrics,
        }
        self.epoch_metrics.update(self._allocation_metrics(stats, sizes))
        self.epoch_histograms = {
            "rollout/acceptance_rate_per_prompt": rates[sampled],
            "rollout/samples_per_prompt": sizes,  # pilots kept for training included
            "allocation/samples_per_prompt": allocation,  # n_i of the main allocation
        }
        if stats.acceptance_rate is not None:
            self.epoch_histograms["allocation/estimated_acceptance_rate"] = np.asarray(stats.acceptance_rate)
            self.epoch_histograms["allocation/estimated_grad_norm"] = np.asarray(stats.grad_norm)
        self.last_stats, self.last_allocation = stats, sizes
        log.info(
            "epoch %d: %d prompts, %d samples (%d pilot), acceptance %.3f, %d rollouts to train on%s, %.1fs",
            epoch, len(prompts), self.samples_generated - counted_before[0],
            self.counters["pilot_samples"] - counted_before[2], self.epoch_metrics["rollout/acceptance_rate"],
            metrics["rollout/kept"], f" ({len(rollouts)} per rank)" if world()[1] > 1 else "", rollout_seconds,
        )  # fmt: skip
        return self._loader(rollouts, seed=self.seed * 100_003 + epoch)

    def _allocation_metrics(self, stats: PromptStats, sizes: np.ndarray) -> dict[str, float]:
        """How the allocator spread the budget: p̂ extremes, the spread of n_i, what it had to guess."""
        metrics = {
            "allocation/samples_min": float(sizes.min()) if sizes.size else 0.0,
            "allocation/samples_max": float(sizes.max()) if sizes.size else 0.0,
            "allocation/samples_std": float(sizes.std()) if sizes.size else 0.0,
            "allocation/prompts_tracked": float(len(self.store.prompts)),
        }
        if stats.acceptance_rate is not None:
            p_hat = np.asarray(stats.acceptance_rate)
            metrics["allocation/estimated_p_zero"] = float(np.mean(p_hat == 0.0))
            metrics["allocation/estimated_p_one"] = float(np.mean(p_hat == 1.0))
            metrics["allocation/fallback_uniform"] = float(stats.extra.get("fallback_uniform", False))
        for key in ("new_prompts", "grad_norm_imputed"):
            if key in stats.extra:
                metrics[f"allocation/{key}"] = float(stats.extra[key])
        return metrics

    def _distribution_metrics(self, local_before: dict[str, int]) -> dict[str, float]:
        """Per rank: samples it generated this epoch (pilots included) and tokens it trains on."""
        rank, size = world()
        if size == 1:
            return {}
        generated = sum(self.local_counters[f"{p}_samples"] - local_before[f"{p}_samples"] for p in ("pilot", "train"))
        parts = all_gather_objects((generated, self._local_train_tokens))
        metrics = {"distributed/world_size": float(size)}
        for r, (samples, tokens) in enumerate(parts):
            metrics[f"distributed/rank{r}_generated_samples"] = float(samples)
            metrics[f"distributed/rank{r}_train_tokens"] = float(tokens)
            # CRC of the n_i each rank computed (24 bits, exact in TensorBoard's float32)
            metrics[f"distributed/rank{r}_allocation_crc"] = float(self._allocation_checksums[r])
        return metrics

    def _weigh(self, prompts, groups, module) -> tuple[list[Rollout], dict[str, float]]:
        """Advantages from the algorithm (on all rollouts), then this rank's token-balanced share, then
        π_old from the trainer's policy on that share (when the loss needs it)."""
        flat = [(i, c) for i, g in enumerate(groups) for c in g]
        if not flat:
            self._local_train_tokens = 0
            return [], {"rollout/kept": 0.0}
        rewards = torch.tensor([c.reward for _, c in flat], dtype=torch.float32)
        accepted = torch.tensor([self.is_accepted(c.reward) for _, c in flat])
        group_ids = torch.tensor([i for i, _ in flat])
        advantages, keep, weighting_metrics = module.rollout_advantages(rewards, accepted, group_ids)
        rollouts = [
            Rollout(self.prompt_ids(prompts[i]), c.token_ids, c.reward, float(a), i, c.logprobs)
            for (i, c), a, k in zip(flat, advantages.tolist(), keep.tolist())
            if k and c.token_ids
        ]
        metrics = {"rollout/kept": float(len(rollouts)), "rollout/kept_fraction": len(rollouts) / len(flat)}
        metrics.update(weighting_metrics)
        rollouts, dropped = self.train_share(rollouts)
        if world()[1] > 1:
            metrics["distributed/dropped_for_balance"] = float(dropped)
        if module.needs_old_logprobs:  # every rank calls it: a sharded forward is a collective
            metrics["rollout/sampler_trainer_logprob_diff"] = self._recompute_old_logprobs(rollouts, module.model)
        return rollouts, metrics

    def train_share(self, rollouts: list[Rollout]) -> tuple[list[Rollout], int]:
        """This rank's part of the epoch's rollouts (all of them on one process): balanced by tokens,
        equal counts on every rank; returns it and how many rollouts no rank got (< world size)."""
        rank, size = world()
        shares = balanced_partition([len(r.prompt_ids) + len(r.response_ids) for r in rollouts], size)
        mine = [rollouts[i] for i in shares[rank]]
        self._local_train_tokens = sum(len(r.prompt_ids) + len(r.response_ids) for r in mine)
        return mine, len(rollouts) - sum(len(share) for share in shares)

    @torch.no_grad()
    def _recompute_old_logprobs(self, rollouts: list[Rollout], model) -> float:
        """π_old = the trainer's policy before the first update; returns mean |sampler − trainer| log-prob."""
        device = next(model.parameters()).device
        pad = self.module.tokenizer.pad_token_id
        total_diff, total_tokens = 0.0, 0
        for start in range(0, len(rollouts), self.batch_size):  # the same number of batches on every rank
            chunk = rollouts[start : start + self.batch_size]
            batch = collate_rollouts(chunk, pad, self.sampler.temperature)
            logprobs, _ = batch_logprobs(model, {k: v.to(device) for k, v in batch.items()})
            logprobs = logprobs.float().cpu()
            mask = batch["response_mask"]
            total_diff += float(((logprobs - batch["sampler_logprobs"]).abs() * mask).sum())
            total_tokens += int(mask.sum())
            for row, item in enumerate(chunk):
                item.old_logprobs = logprobs[row][mask[row]].tolist()
        total_diff, total_tokens = all_reduce_sum([total_diff, total_tokens], device)
        return total_diff / max(total_tokens, 1)

    def _loader(self, rollouts: list[Rollout], seed: int) -> DataLoader:
        module = self.module
        pad = module.tokenizer.pad_token_id
        # ratio-based losses compare with π_old at the sampling temperature; likelihood losses use T = 1
        temperature = self.sampler.temperature if module.needs_old_logprobs else 1.0
        return DataLoader(
            rollouts,
            batch_size=self.batch_size,
            sampler=RepeatedShuffle(len(rollouts), self.update_epochs, seed),
            collate_fn=partial(collate_rollouts, pad_id=pad, temperature=temperature),
            generator=_own_generator(seed),
        )

    # ------------------------------------------------------------------ evaluation
    def val_records(self, split: str = "val") -> list[PromptRecord]:
        records = self.eval_source.records(split)
        return records[: self.val_size] if self.val_size is not None else records

    def val_dataloader(self) -> DataLoader:
        records = self.val_records("val")
        return DataLoader(records, batch_size=self.val_batch_size, collate_fn=list, generator=_own_generator(self.seed))

    def test_dataloader(self) -> DataLoader:
        records = self.val_records("test")
        return DataLoader(records, batch_size=self.val_batch_size, collate_fn=list, generator=_own_generator(self.seed))

    def evaluate(self, records: Sequence[PromptRecord]) -> dict:
        """Greedy and sampled correctness of ``records``: ``greedy`` [B] and ``sampled`` [B, n] 0/1 arrays,
        the canonical ``answers`` [B][n] of the samples (maj@k) and each record's ``benchmark``.

        Evaluation samples with its own random stream (seeded by the data seed and the first record),
        so it neither consumes nor depends on the training stream: every arm of an ablation is
        evaluated on the same draws at step 0, and resuming does not change later rollouts.
        """
        with self._random_stream(f"eval:{records[0].uid if records else ''}"):
            greedy = self.sample(records, [1] * len(records), purpose="eval", greedy=True)
            result = {
                "greedy": np.array([float(self.is_accepted(g[0].reward)) for g in greedy]),
                "benchmark": [r.meta.get("benchmark", "val") for r in records],
            }
            if self.val_samples > 0:
                sampled = self.sample(records, [self.val_samples] * len(records), purpose="eval")
                result["sampled"] = np.array([[float(self.is_accepted(c.reward)) for c in g] for g in sampled])
                result["answers"] = [[self.verifier.extract(c.text) for c in g] for g in sampled]
        return result

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        return {
            "counters": dict(self.counters),
            "local_counters": dict(self.local_counters),
            "sampler": self.sampler.state_dict(),
            "allocator": self.allocator.state_dict(),
            "prompt_stats": self.store.state_dict(),
            "verifier_outcomes": dict(self.verifier.outcomes),
        }

    def load_state_dict(self, state: dict) -> None:
        self.counters.update(state["counters"])
        self.local_counters.update(state.get("local_counters", state["counters"]))
        self.sampler.load_state_dict(state["sampler"])
        self.allocator.load_state_dict(state["allocator"])
        self.store.load_state_dict(state.get("prompt_stats", {}))
        self.verifier.outcomes.update(state.get("verifier_outcomes", {}))
