"""The shared LightningModule: policy loading, the training step, KL to a reference, evaluation, logging.

Algorithms (RAFT, RAFT++, GRPO, SFT) differ in two hooks only:

- ``rollout_advantages(rewards, accepted, group_ids)`` — how the data module weighs each rollout and
  which rollouts it keeps;
- ``policy_loss(logprobs, batch)`` — the per-token loss (pure functions in :mod:`gvmlit.losses`).
"""

from __future__ import annotations

import copy
import logging
import random
import time
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger

from gvmlit.errors import GvmlitError
from gvmlit.export import describe_policy, plain_model
from gvmlit.forward import batch_logprobs
from gvmlit.losses import AGGREGATIONS, aggregate, clipped_surrogate, kl_k3, token_entropy
from gvmlit.metrics import evaluation_metrics, format_table
from gvmlit.parallel import all_ranks_true, check_strategy, full_state_dict, grad_norm, is_sharded, shard_for, world
from gvmlit.plots import allocation_figure
from gvmlit.policy import PolicyLoader, TinyCharPolicy

log = logging.getLogger("gvmlit")


class RolloutAlgorithm(LightningModule):
    """Base of the policy-training modules.

    Args:
        policy: how to build the policy and tokenizer (``PretrainedPolicy`` or ``TinyCharPolicy``).
        lr: AdamW learning rate (constant after warm-up, as in the paper).
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up, in optimiser steps.
        kl_coef: coefficient of the KL penalty to the frozen initial policy (0 = no reference model).
        aggregation: how per-token losses become one number: ``token_mean`` (over the mini-batch),
            ``seq_mean_token_mean`` or ``prompt_mean`` (see :func:`gvmlit.losses.aggregate`).
        nonfinite: a NaN or infinite loss or gradient: ``stop`` the run with a message naming the step
            (the last checkpoint is kept), or ``skip`` the batch and count it (``train/skipped_batches``).
    """

    #: whether the data module must recompute π_old log-probs with the trainer's policy
    needs_old_logprobs: bool = False

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        kl_coef: float = 0.0,
        aggregation: str = "token_mean",
        nonfinite: Literal["stop", "skip"] = "stop",
    ) -> None:
        super().__init__()
        if nonfinite not in ("stop", "skip"):
            raise GvmlitError(f"model.nonfinite must be 'stop' or 'skip', got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.skipped_batches = 0
        if aggregation not in AGGREGATIONS:
            raise GvmlitError(f"model.aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        if kl_coef < 0:
            raise GvmlitError(f"model.kl_coef must be ≥ 0, got {kl_coef}")
        self.policy = policy if policy is not None else TinyCharPolicy()
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.kl_coef = kl_coef
        self.aggregation = aggregation
        self.model: torch.nn.Module | None = None
        self.tokenizer = None
        self._reference: list[torch.nn.Module] = []  # kept out of state_dict and parameters()
        self._replica: list[torch.nn.Module] = []  # unsharded copy for rollouts, when the policy is sharded
        self._replica_step: int | None = None
        self._export_description: dict | None = None  # model config + tokenizer files, saved in checkpoints

    # ------------------------------------------------------------------ policy
    def configure_model(self) -> None:
        """Load the policy (and the frozen reference); under FSDP2 shard both per decoder layer."""
        if self.model is not None:
            return
        strategy = self.trainer.strategy if self._trainer is not None else None
        check_strategy(strategy)
        model, self.tokenizer = self.policy.load()
        model.train()  # from_pretrained returns eval mode
        if self.kl_coef > 0:
            reference = copy.deepcopy(model).eval().requires_grad_(False)
            self._reference = [shard_for(strategy, reference)]
        self.model = shard_for(strategy, model)

    def local_policy(self) -> torch.nn.Module:
        """The policy with its current weights as one unsharded module, for rollouts and gradient norms.

        Unsharded policies are returned as they are. A sharded one (FSDP2) is gathered into a replica
        kept on this rank, refreshed when the weights changed since the last call (a collective: the
        data module calls it on all ranks at the start of every rollout phase).
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

    @property
    def use_chat_template(self) -> bool:
        return self.policy.use_chat_template

    @property
    def reference(self) -> torch.nn.Module | None:
        return self._reference[0] if self._reference else None

    def on_fit_start(self) -> None:
        if self.reference is not None:
            self.reference.to(self.device)

    # ------------------------------------------------------------------ algorithm hooks
    def rollout_advantages(
        self, rewards: torch.Tensor, accepted: torch.Tensor, group_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(advantages [B], keep [B], metrics to log) for the epoch's rollouts; groups are prompts."""
        raise NotImplementedError

    def policy_loss(self, logprobs: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token loss [B, T] and extra per-token diagnostics to log (masked means)."""
        raise NotImplementedError

    def clipped_policy_loss(self, logprobs: torch.Tensor, batch: dict[str, torch.Tensor]):
        """The PPO clipped surrogate against π_old (RAFT++ and GRPO), with its diagnostics."""
        loss, clipped = clipped_surrogate(logprobs, batch["old_logprobs"], batch["advantages"], self.clip_low, self.clip_high)
        ratio = torch.exp(logprobs.detach() - batch["old_logprobs"])
        return loss, {"clip_fraction": clipped.detach(), "ratio": ratio}

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logprobs, logits = batch_logprobs(self.model, batch)  # [B, T], [B, T, V]
        mask = batch["response_mask"]
        per_token, diagnostics = self.policy_loss(logprobs, batch)
        if self.reference is not None:
            with torch.no_grad():
                ref_logprobs, _ = batch_logprobs(self.reference, batch)
            kl = kl_k3(logprobs, ref_logprobs)
            per_token = per_token + self.kl_coef * kl
            diagnostics["kl"] = kl.detach()
        loss = aggregate(per_token, mask, self.aggregation, batch["group_ids"])
        if not all_ranks_true(bool(torch.isfinite(loss)), loss.device):  # every rank must skip together
            where = f"train/loss is {float(loss)} at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
            if self.nonfinite == "stop":
                raise GvmlitError(f"{where}; stopping — the last checkpoint is kept (lower model.lr, or set model.nonfinite=skip)")
            self.skipped_batches += 1
            log.warning("%s; batch skipped (%d so far)", where, self.skipped_batches)
            self.log("train/skipped_batches", float(self.skipped_batches))
            return None
        with torch.no_grad():
            diagnostics["entropy"] = token_entropy(logits.detach(), float(batch["temperature"]))
            n_tokens = mask.sum().clamp(min=1)
            logged = {f"train/{k}": (v.float() * mask).sum() / n_tokens for k, v in diagnostics.items()}
        self.log("train/loss", loss, prog_bar=True, batch_size=mask.shape[0], sync_dist=world()[1] > 1)
        self.log_dict(logged, batch_size=mask.shape[0])
        return loss

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.warmup_steps <= 0:
            return optimizer
        warmup = self.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer) -> None:
        if any(p.grad is not None for p in self.model.parameters()):
            total = grad_norm(self.model.parameters())  # global, also over sharded gradients
            if not torch.isfinite(total):
                where = f"train/grad_norm is {float(total)} at step {self.global_step} (epoch {self.current_epoch})"
                if self.nonfinite == "stop":
                    raise GvmlitError(f"{where}; stopping — the last checkpoint is kept (lower model.lr, or set model.nonfinite=skip)")
                for p in self.model.parameters():  # AdamW leaves parameters without a gradient untouched
                    p.grad = None
                self.skipped_batches += 1
                log.warning("%s; optimiser step skipped (%d so far)", where, self.skipped_batches)
                self.log("train/skipped_batches", float(self.skipped_batches))
                return
            self.log("train/grad_norm", total)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Besides Lightning's state: RNG states (exact resume of sampling) and the policy's identity."""
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
            "export": self._describe_for_export(),  # `gvmlit export` needs only the checkpoint
        }

    def _describe_for_export(self) -> dict:
        """The policy's config and tokenizer files, serialised once (neither changes during a run)."""
        if self._export_description is None:
            self._export_description = describe_policy(self.model, self.tokenizer)
        return self._export_description

    def on_load_checkpoint(self, checkpoint: dict) -> None:
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

    # ------------------------------------------------------------------ epoch-level logging
    def on_train_epoch_start(self) -> None:
        datamodule = self.trainer.datamodule
        metrics = dict(getattr(datamodule, "epoch_metrics", {}))
        if metrics:
            metrics["epoch"] = float(self.current_epoch)
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.global_step)
            self._log_histograms(getattr(datamodule, "epoch_histograms", {}))

    def _log_histograms(self, histograms: dict[str, np.ndarray]) -> None:
        datamodule = self.trainer.datamodule
        stats = getattr(datamodule, "last_stats", None)
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                for name, values in histograms.items():
                    values = np.asarray(values, dtype=np.float64)
                    values = values[np.isfinite(values)]
                    if values.size:
                        logger.experiment.add_histogram(name, values, global_step=self.global_step)
                if stats is not None and stats.acceptance_rate is not None:
                    figure = allocation_figure(stats.acceptance_rate, datamodule.last_allocation, self.current_epoch)
                    logger.experiment.add_figure("allocation/samples_vs_estimated_acceptance", figure, self.global_step)

    def on_train_epoch_end(self) -> None:
        started = getattr(self.trainer.datamodule, "epoch_started", None)
        if started is not None:
            for logger in self.loggers:
                logger.log_metrics({"time/epoch_seconds": time.perf_counter() - started}, step=self.global_step)

    def on_train_start(self) -> None:
        """Evaluate the starting policy once, so every curve has its step-0 point."""
        if self.global_step == 0 and self.trainer.val_dataloaders is not None and self.trainer.limit_val_batches != 0:
            self._evaluation_start()
            for batch in self.trainer.datamodule.val_dataloader():
                self._evaluation_batch(batch)
            self._evaluation_end()

    # ------------------------------------------------------------------ evaluation
    def _evaluation_start(self) -> None:
        self._eval_results: list[dict] = []

    def _evaluation_batch(self, batch) -> None:
        self._eval_results.append(self.trainer.datamodule.evaluate(batch))

    def _evaluation_end(self) -> dict[str, float]:
        results = self._eval_results
        if not results:
            return {}
        greedy = np.concatenate([r["greedy"] for r in results])
        sampled = np.concatenate([r["sampled"] for r in results]) if "sampled" in results[0] else None
        answers = [a for r in results for a in r["answers"]] if "answers" in results[0] else None
        groups = [b for r in results for b in r["benchmark"]]
        datamodule = self.trainer.datamodule
        table = evaluation_metrics(greedy, sampled, answers, groups, getattr(datamodule, "eval_ks", None))
        stage = "test" if self.trainer.testing else "val"
        summary = table.get("average", next(iter(table.values())))
        metrics = {f"{stage}/{k}": v for k, v in summary.items() if k != "problems"}
        if len(table) > 1:
            for name, entry in table.items():
                metrics.update({f"{stage}/{name}/{k}": v for k, v in entry.items() if k != "problems"})
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)
            samples = getattr(datamodule, "samples_generated", None)
            if samples is not None and stage == "val":
                logger.log_metrics({f"{k}_vs_samples": v for k, v in metrics.items() if k.count("/") == 1}, step=int(samples))
        log.info(
            "%s at step %d: %s", "test" if stage == "test" else "validation", self.global_step,
            ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if k != "problems"),
        )  # fmt: skip
        if self.trainer.state.fn in ("validate", "test") and self.trainer.is_global_zero:
            print(f"\n{format_table(table)}\n", flush=True)
        self.last_evaluation = table
        return metrics

    def on_validation_epoch_start(self) -> None:
        self._evaluation_start()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluation_batch(batch)

    def on_validation_epoch_end(self) -> None:
        metrics = self._evaluation_end()
        for name, value in metrics.items():
            if name.count("/") == 1:  # through self.log too, so checkpoint callbacks can monitor val/accuracy
                # identical on every rank (evaluation results are gathered); sync_dist only silences Lightning
                self.log(name, value, logger=False, prog_bar=name.endswith("/accuracy"), sync_dist=world()[1] > 1)

    on_test_epoch_start = on_validation_epoch_start
    test_step = validation_step
    on_test_epoch_end = on_validation_epoch_end



def _numpy_state() -> list:
    """NumPy's global RNG state as plain Python values (checkpoints load with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _describe(policy: PolicyLoader) -> str:
    """The identity of a policy loader: its class and constructor arguments."""
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(policy).items()) if not k.startswith("_"))
    return f"{type(policy).__name__}({args})"
