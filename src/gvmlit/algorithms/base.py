"""PolicyModule: the LightningModule every gvmlit learner is — policy, training step, evaluation.

It owns the pluggable parts a user swaps by config (``model.init_args`` in YAML): the policy loader,
the :class:`~gvmlit.sampling.Sampler`, the :class:`~gvmlit.verifiers.Verifier` (and, in
:class:`~gvmlit.algorithms.rollout.RolloutAlgorithm`, the :class:`~gvmlit.allocation.BudgetAllocator`).
Algorithms differ in one hook, ``policy_loss(logprobs, batch)`` (pure functions in
:mod:`gvmlit.losses`), and rollout learners in a second, ``rollout_advantages``.

What it computes is returned as typed values (``last_evaluation`` here, ``last_rollouts`` in the
rollout learner) that the :class:`~gvmlit.callbacks.RolloutLogger` callback writes to the loggers.
"""

from __future__ import annotations

import copy
import logging
import random
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt
from lightning.pytorch import LightningModule

from gvmlit.collector import Budget, RolloutCollector
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.errors import GvmlitError
from gvmlit.export import describe_policy, plain_model
from gvmlit.forward import batch_logprobs
from gvmlit.losses import Aggregation, aggregate, kl_k3, token_entropy
from gvmlit.metrics import evaluation_metrics
from gvmlit.parallel import check_strategy, full_state_dict, is_sharded, shard_for, world
from gvmlit.policy import PolicyLoader, TinyCharPolicy, max_model_length
from gvmlit.records import Prompt
from gvmlit.sampling import HFSampler, Sampler
from gvmlit.verifiers import ArithmeticVerifier, Verifier

if TYPE_CHECKING:
    from gvmlit.algorithms.rollout import EpochRollouts

log = logging.getLogger("gvmlit")


@dataclass
class Evaluation:
    """One evaluation of the policy: per-benchmark metrics at ``step``, after ``samples`` generated
    training samples (pilots included)."""

    stage: Literal["val", "test"]
    step: int
    samples: int
    table: dict[str, dict[str, float]]
    average: Literal["macro", "micro"]

    @property
    def summary(self) -> dict[str, float]:
        """The headline metrics: the average row with several benchmarks, else the only one."""
        return {k: v for k, v in self.table.get("average", next(iter(self.table.values()))).items() if k != "problems"}


class PolicyModule(LightningModule):
    """Base of gvmlit's learners.

    Args:
        policy: how to build the policy and tokenizer (``PretrainedPolicy`` or ``TinyCharPolicy``).
        sampler: draws completions from the live policy (default: ``HFSampler``).
        verifier: scores completions against their prompt records (default: ``ArithmeticVerifier``).
        eval_sampler: sampling settings for evaluation (default: ``sampler``); greedy accuracy always
            decodes by argmax.
        val_samples: n, sampled completions per evaluation problem for mean@n, pass@k, maj@k (0 = greedy only).
        eval_ks: the k of pass@k and maj@k (default: 1 and n).
        benchmark_average: with several benchmarks (records' ``meta["benchmark"]``), ``val/<metric>``
            is the mean over benchmarks (``macro``, as papers report) or over all problems (``micro``).
        lr: AdamW learning rate (constant after warm-up, as in the paper).
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up, in optimiser steps.
        kl_coef: coefficient of the KL penalty to the frozen initial policy (0 = no reference model).
        kl_value_clamp: the per-token k3 KL is capped at this (the reference code caps it at 10; its log
            ratio is clamped to ±20 first, as there).
        aggregation: how per-token losses become one number (:func:`gvmlit.losses.aggregate`).
        nonfinite: a NaN or infinite loss or gradient: ``stop`` the run with a message naming the step
            (the last checkpoint is kept), or ``skip`` the batch and count it (``train/skipped_batches``).
        max_fault_fraction: stop when more than this share of one collection's answers are verifier
            timeouts or errors (training on them would train on zero rewards).
    """

    #: whether the loss compares with π_old (ratio-based losses), which the learner then recomputes
    needs_old_logprobs: bool = False

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        sampler: Sampler | None = None,
        verifier: Verifier | None = None,
        eval_sampler: Sampler | None = None,
        val_samples: NonNegativeInt = 4,
        eval_ks: list[int] | None = None,
        benchmark_average: Literal["macro", "micro"] = "macro",
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_steps: NonNegativeInt = 0,
        kl_coef: NonNegativeFloat = 0.0,
        kl_value_clamp: float = 10.0,
        aggregation: Aggregation = "token_mean",
        nonfinite: Literal["stop", "skip"] = "stop",
        max_fault_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        self.policy = policy if policy is not None else TinyCharPolicy()
        self.sampler = sampler if sampler is not None else HFSampler()
        self.verifier = verifier if verifier is not None else ArithmeticVerifier()
        self.eval_sampler = eval_sampler if eval_sampler is not None else self.sampler
        self.val_samples = val_samples
        self.eval_ks = eval_ks
        self.benchmark_average = benchmark_average
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.kl_coef, self.kl_value_clamp = kl_coef, kl_value_clamp
        self.aggregation = aggregation
        self.nonfinite = nonfinite
        self.max_fault_fraction = max_fault_fraction
        self.skipped_batches = 0
        self.model: torch.nn.Module | None = None
        self.tokenizer = None
        self.budget = Budget()
        self.collector: RolloutCollector | None = None
        self.last_evaluation: Evaluation | None = None
        self.last_rollouts: EpochRollouts | None = None  # set by rollout learners each epoch
        self._eval_batches: list[dict] = []
        self._reference: list[torch.nn.Module] = []  # kept out of state_dict and parameters()
        self._replica: list[torch.nn.Module] = []  # unsharded copy for rollouts, when the policy is sharded
        self._replica_step: int | None = None
        self._export_description: dict | None = None  # model config + tokenizer files, saved in checkpoints
        self._run_seed = 0
        self._checkpoint_step: int | None = None  # the step of the checkpoint evaluated by validate / test

    # ------------------------------------------------------------------ policy
    def configure_model(self) -> None:
        """Load the policy (and the frozen reference); under FSDP2 shard both per decoder layer; give
        the data module what it needs to encode prompts and batch rollouts."""
        if self.model is None:
            strategy = self.trainer.strategy if self._trainer is not None else None
            check_strategy(strategy)
            model, self.tokenizer = self.policy.load()
            model.train()  # from_pretrained returns eval mode
            if self.kl_coef > 0:
                self._reference = [shard_for(strategy, copy.deepcopy(model).eval().requires_grad_(False))]
            self.model = shard_for(strategy, model)
            self.collector = RolloutCollector(self.sampler, self.verifier, self.tokenizer, self.budget, self.max_fault_fraction)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if isinstance(datamodule, RolloutDataModule):
            longest = max(self.sampler.max_new_tokens, self.eval_sampler.max_new_tokens)
            datamodule.connect(
                self.tokenizer, chat_template=self.policy.use_chat_template,
                max_prompt_tokens=max_model_length(self.model) - longest, collect_epoch=self.rollout_hook(),
            )  # fmt: skip

    def rollout_hook(self):
        """What the data module calls at the start of every training epoch (None: it serves its own data)."""
        return None

    def local_policy(self) -> torch.nn.Module:
        """The policy with its current weights as one unsharded module, for rollouts and gradient norms.

        A sharded policy (FSDP2) is gathered into a replica kept on this rank, refreshed when the weights
        changed since the last call (a collective: every rank calls it at the same points).
        """
        if not is_sharded(self.model):
            return self.model
        if self._replica and self._replica_step == self.global_step:
            return self._replica[0]
        weights = full_state_dict(self.model)
        if not self._replica:
            dtype = next(iter(weights.values())).dtype
            self._replica = [plain_model(self.model.config, dtype).to(self.device).eval()]
        self._replica[0].load_state_dict(weights)
        self._replica_step = self.global_step
        return self._replica[0]

    def rollout_policy(self, sampler: Sampler) -> torch.nn.Module:
        """The policy ``sampler`` generates from: engines that sync weights themselves take the (maybe
        sharded) training policy, others an unsharded local one."""
        return self.model if sampler.accepts_sharded_policy else self.local_policy()

    @property
    def reference(self) -> torch.nn.Module | None:
        return self._reference[0] if self._reference else None

    @property
    def loss_temperature(self) -> float:
        """Ratio-based losses compare with π_old at the sampling temperature; likelihood losses use T = 1."""
        return self.sampler.temperature if self.needs_old_logprobs else 1.0

    @contextmanager
    def random_stream(self, name: str):
        """Run the block on its own torch random stream seeded by (run seed, ``name``), so that what it
        draws neither depends on nor shifts anything else (exact resume, equal evaluation draws across
        ablation arms); the global stream is restored afterwards. Ranks draw different numbers."""
        device = next(self.model.parameters()).device
        rank, size = world()
        name = f"{name}:rank{rank}" if size > 1 else name
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(zlib.crc32(f"{self._run_seed}:{name}".encode()))
            yield

    def setup(self, stage: str) -> None:
        self._run_seed = torch.initial_seed()  # the run's seed (seed_everything) enters every stream

    def on_fit_start(self) -> None:
        if self.reference is not None:
            self.reference.to(self.device)
        # π0's evaluation, before the first rollout is drawn: its point sits at 0 generated samples
        if self.trainer.ckpt_path is None and self.trainer.limit_val_batches != 0:
            self.on_validation_epoch_start()
            for batch in self.trainer.datamodule.val_dataloader():
                self.validation_step(batch, 0)
            self.last_evaluation = self.finish_evaluation("val")

    # ------------------------------------------------------------------ training
    def policy_loss(self, logprobs: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token loss [B, T] and extra per-token diagnostics to log (masked means)."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        if batch["input_ids"].shape[0] == 0:
            return None  # an epoch with nothing to train on (logged when it was collected): no update
        logprobs, logits = batch_logprobs(self.model, batch, self.loss_temperature)  # [B, T], [B, T, V]
        mask = batch["response_mask"]
        per_token, diagnostics = self.policy_loss(logprobs, batch)
        if self.reference is not None:
            with torch.no_grad():
                ref_logprobs, _ = batch_logprobs(self.reference, batch, self.loss_temperature)
            kl = kl_k3(logprobs, ref_logprobs, value_clamp=self.kl_value_clamp)
            per_token = per_token + self.kl_coef * kl
            diagnostics["kl"] = kl.detach()
        loss = aggregate(per_token, mask, self.aggregation, batch["group_ids"])
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            return self._nonfinite(f"train/loss is {float(loss.detach())} at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})")
        with torch.no_grad():
            diagnostics["entropy"] = token_entropy(logits.detach(), self.loss_temperature)
            n_tokens = mask.sum().clamp(min=1)
            logged = {f"train/{k}": (v.float() * mask).sum() / n_tokens for k, v in diagnostics.items()}
        self.log("train/loss", loss, prog_bar=True, batch_size=mask.shape[0], sync_dist=world()[1] > 1)
        self.log_dict(logged, batch_size=mask.shape[0])
        return loss

    def _nonfinite(self, where: str) -> None:
        """Stop (default) or skip a non-finite loss or gradient, as ``nonfinite`` says."""
        if self.nonfinite == "stop":
            raise GvmlitError(f"{where}; stopping — the last checkpoint is kept (lower model.lr, or set model.nonfinite=skip)")
        self.skipped_batches += 1
        log.warning("%s; batch skipped (%d so far)", where, self.skipped_batches)
        self.log("train/skipped_batches", float(self.skipped_batches))
        return None

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.warmup_steps <= 0:
            return optimizer
        warmup = self.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer) -> None:
        total = gradient_norm(self.model)
        if total is None:
            return
        if not torch.isfinite(total):
            for p in self.model.parameters():  # AdamW leaves parameters without a gradient untouched
                p.grad = None
            self._nonfinite(f"train/grad_norm is {float(total)} at step {self.global_step} (epoch {self.current_epoch})")
            return
        self.log("train/grad_norm", total)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, prompts: list[Prompt]) -> dict:
        """Greedy and sampled correctness of ``prompts``: ``greedy`` [B] and ``sampled`` [B, n] 0/1 arrays,
        the canonical ``answers`` [B][n] of the samples (maj@k) and each problem's ``benchmark``.

        Evaluation draws on its own random stream (keyed on the first problem), so it neither consumes
        nor depends on the training stream.
        """
        policy = self.rollout_policy(self.eval_sampler)
        correct = lambda c: float(c.outcome == "correct")  # noqa: E731
        with self.random_stream(f"eval:{prompts[0].record.uid if prompts else ''}"):
            greedy = self.collector.collect(policy, prompts, [1] * len(prompts), "eval", greedy=True, sampler=self.eval_sampler)
            result = {"greedy": np.array([correct(g[0]) for g in greedy]), "benchmark": [p.record.meta.get("benchmark", "val") for p in prompts]}
            if self.val_samples > 0:
                sampled = self.collector.collect(policy, prompts, [self.val_samples] * len(prompts), "eval", sampler=self.eval_sampler)
                result["sampled"] = np.array([[correct(c) for c in g] for g in sampled])
                result["answers"] = [[self.verifier.extract(c.text) for c in g] for g in sampled]
        return result

    def finish_evaluation(self, stage: Literal["val", "test"]) -> Evaluation | None:
        batches, self._eval_batches = self._eval_batches, []
        if not batches:
            return None
        greedy = np.concatenate([b["greedy"] for b in batches])
        sampled = np.concatenate([b["sampled"] for b in batches]) if "sampled" in batches[0] else None
        answers = [a for b in batches for a in b["answers"]] if "answers" in batches[0] else None
        groups = [name for b in batches for name in b["benchmark"]]
        table = evaluation_metrics(greedy, sampled, answers, groups, self.eval_ks, self.benchmark_average)
        # `gvmlit validate|test --ckpt_path …` restores the weights but not the loop: report the checkpoint's step
        step = self.global_step if self.trainer.state.fn == "fit" or self._checkpoint_step is None else self._checkpoint_step
        evaluation = Evaluation(stage, step, self.budget.training_samples, table, self.benchmark_average)
        log.info(
            "%s at step %d (%d samples generated): %s", "test" if stage == "test" else "validation", step,
            evaluation.samples, ", ".join(f"{k} {v:.3f}" for k, v in evaluation.summary.items()),
        )  # fmt: skip
        return evaluation

    def on_validation_epoch_start(self) -> None:
        self._eval_batches = []

    def validation_step(self, batch: list[Prompt], batch_idx: int) -> None:
        self._eval_batches.append(self.evaluate(batch))

    def on_validation_epoch_end(self) -> None:
        self.last_evaluation = self.finish_evaluation("test" if self.trainer.testing else "val")
        if self.last_evaluation is None:
            return
        for name, value in self.last_evaluation.summary.items():  # through self.log: checkpoint callbacks can monitor
            # identical on every rank (evaluation results are gathered); sync_dist only silences Lightning
            self.log(f"{self.last_evaluation.stage}/{name}", value, logger=False, prog_bar=name == "accuracy", sync_dist=world()[1] > 1)

    on_test_epoch_start = on_validation_epoch_start
    test_step = validation_step
    on_test_epoch_end = on_validation_epoch_end

    def configure_callbacks(self):
        from gvmlit.callbacks import GradientSpread, RolloutLogger
        from gvmlit.checkpoints import SafeCheckpoints

        return [RolloutLogger(), SafeCheckpoints(), GradientSpread()]

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Besides Lightning's state: RNG states, the policy's identity, what export needs, and the
        rollout state (budget counters, verifier outcomes, allocator statistics)."""
        if self._export_description is None:  # the config and tokenizer files never change during a run
            self._export_description = describe_policy(self.model, self.tokenizer)
        checkpoint["gvmlit"] = {
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": _numpy_state(),
                "python": random.getstate(),
            },
            "policy": _describe(self.policy),
            "reference": _describe(self.policy) if self.kl_coef > 0 else None,
            "skipped_batches": self.skipped_batches,
            "export": self._export_description,  # `gvmlit export` needs only the checkpoint
            "rollout": self.rollout_state(),
        }

    def rollout_state(self) -> dict:
        return {"budget": self.budget.state_dict(), "verifier": self.verifier.state_dict()}

    def load_rollout_state(self, state: dict) -> None:
        self.budget.load_state_dict(state.get("budget", {}))
        self.verifier.load_state_dict(state.get("verifier", {}))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._checkpoint_step = checkpoint.get("global_step")
        state = checkpoint.get("gvmlit")
        if state is None:
            return
        if state["reference"] is not None and state["reference"] != _describe(self.policy):
            raise GvmlitError(
                f"the checkpoint's KL reference policy was {state['reference']}, but this run's policy is "
                f"{_describe(self.policy)}: resume with the policy the run started from"
            )
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        random.setstate(rng["python"])
        self.skipped_batches = state.get("skipped_batches", 0)
        self.load_rollout_state(state.get("rollout", {}))


def gradient_norm(model: torch.nn.Module) -> torch.Tensor | None:
    """The global L2 norm of ``model``'s gradients (None without any), also when they are sharded
    DTensors: torch's ``get_total_norm`` then returns a DTensor whose full value is the global norm."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return None
    total = torch.nn.utils.get_total_norm(grads)
    return total.full_tensor() if isinstance(total, DTensor) else total


def _numpy_state() -> list:
    """NumPy's global RNG state as plain Python values (checkpoints load with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _describe(policy: PolicyLoader) -> str:
    """The identity of a policy loader: its class and constructor arguments."""
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(policy).items()) if not k.startswith("_"))
    return f"{type(policy).__name__}({args})"
