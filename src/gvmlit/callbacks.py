"""Callbacks: the cross-cutting concerns kept out of the learners (logging, export)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from lightning.pytorch import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from gvmlit.export import save_policy
from gvmlit.metrics import format_table
from gvmlit.plots import allocation_figure

log = logging.getLogger("gvmlit")


class RolloutLogger(Callback):
    """Writes what the learner produced — the epoch's ``EpochRollouts`` (``pl_module.epoch_result``, set by
    the learner's own epoch hook) and each ``Evaluation`` (``pl_module.last_evaluation``) — to every
    logger: scalars, histograms (TensorBoard) and the allocation scatter, plus evaluation curves against
    generated samples (``val/<metric>_vs_samples``). Added by every gvmlit learner."""

    def __init__(self) -> None:
        self._logged_evaluation = None
        self._logged_epoch = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._log_evaluation(trainer, pl_module)  # π0's evaluation, made before the first rollout

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """The epoch's rollouts, as soon as its first batch is served (the learner collected them in its
        epoch hook, which runs after the callbacks')."""
        result = getattr(pl_module, "epoch_result", None)  # None for learners that serve their own data (SFT)
        if result is None or result is self._logged_epoch or result.epoch != trainer.current_epoch:
            return
        self._logged_epoch = result
        step = result.step
        for logger in trainer.loggers:
            logger.log_metrics({**result.metrics, "epoch": float(result.epoch)}, step=step)
            if isinstance(logger, TensorBoardLogger):
                for name, values in result.histograms.items():
                    values = np.asarray(values, dtype=np.float64)
                    if np.isfinite(values).any():
                        logger.experiment.add_histogram(name, values[np.isfinite(values)], global_step=step)
                allocation = result.allocation
                if allocation.acceptance_rate is not None and len(allocation.acceptance_rate):
                    figure = allocation_figure(allocation.acceptance_rate, [len(g) for g in result.groups], result.epoch)
                    logger.experiment.add_figure("allocation/samples_vs_estimated_acceptance", figure, step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        result = getattr(pl_module, "epoch_result", None)
        if result is not None and result.epoch == trainer.current_epoch:
            for logger in trainer.loggers:
                logger.log_metrics({"time/epoch_seconds": time.perf_counter() - result.started}, step=trainer.global_step)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._log_evaluation(trainer, pl_module)

    def on_test_end(self, trainer, pl_module) -> None:
        self._log_evaluation(trainer, pl_module)

    def _log_evaluation(self, trainer, pl_module) -> None:
        evaluation = pl_module.last_evaluation
        if evaluation is None or evaluation is self._logged_evaluation:
            return
        self._logged_evaluation = evaluation
        stage = evaluation.stage
        metrics = {f"{stage}/{k}": v for k, v in evaluation.summary.items()}
        if len(evaluation.table) > 1:
            for name, entry in evaluation.table.items():
                metrics.update({f"{stage}/{name}/{k}": v for k, v in entry.items() if k != "problems"})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=evaluation.step)
            if stage == "val":  # the sample-efficiency x-axis: generated training samples, pilots included
                logger.log_metrics({f"{k}_vs_samples": v for k, v in metrics.items()}, step=evaluation.samples)
        if trainer.state.fn in ("validate", "test") and trainer.is_global_zero:
            print(f"\n{format_table(evaluation.table)}\n", flush=True)
            log_dir = trainer.logger.log_dir if trainer.logger is not None else None
            if log_dir:  # per-problem outcomes, for analyses that need more than the averages
                path = Path(log_dir) / f"{stage}_outcomes.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"step": evaluation.step, "samples": evaluation.samples, "outcomes": evaluation.outcomes}))
                log.info("per-problem %s outcomes: %s", stage, path)


class GradientSpread(Callback):
    """A measured gradient-variance proxy: how much one epoch's mini-batch gradients disagree.

    Each optimiser step's gradient g_b (before clipping) is sketched into a few numbers per parameter
    tensor — uᵀGv for a matrix G and wᵀg for a vector, with fixed random Gaussian directions, so inner
    products are preserved in expectation — and at the end of the epoch it logs

        train/grad_noise_to_signal = mean_b ‖s_b − s̄‖² / ‖s̄‖²

    the spread of the epoch's mini-batch gradients around their mean relative to the mean's size
    (0: every step pushes the same way; ≫ 1: noise dominates). An allocator that reduces gradient
    variance should lower it at equal batch size. Needs two steps or more in the epoch; not computed
    for sharded (FSDP2) gradients.

    Args:
        directions: random directions per parameter tensor.
        seed: seed of the directions.
    """

    def __init__(self, directions: int = 4, seed: int = 0) -> None:
        self.directions, self.seed = directions, seed
        self._basis: dict[str, tuple] = {}
        self._sketches: list = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        import torch
        from torch.distributed.tensor import DTensor

        parts = []
        for name, param in pl_module.model.named_parameters():
            grad = param.grad
            if grad is None:
                continue
            if isinstance(grad, DTensor):
                self._sketches = []
                return
            if name not in self._basis:
                generator = torch.Generator().manual_seed(self.seed + len(self._basis))
                shapes = [grad.shape[0], grad.shape[1]] if grad.dim() == 2 else [grad.numel()]
                self._basis[name] = tuple(torch.randn(self.directions, size, generator=generator).to(grad.device) / size**0.5 for size in shapes)
            basis, g = self._basis[name], grad.detach().float()
            parts.append(torch.einsum("km,mn,kn->k", basis[0], g, basis[1]) if len(basis) == 2 else basis[0] @ g.reshape(-1))
        if parts:
            self._sketches.append(torch.cat(parts).cpu())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        import torch

        sketches, self._sketches = self._sketches, []
        if len(sketches) < 2:
            return
        stacked = torch.stack(sketches)  # [steps, directions × tensors]
        mean = stacked.mean(0)
        noise = float(((stacked - mean) ** 2).sum(1).mean())
        signal = float((mean**2).sum())
        for logger in trainer.loggers:
            logger.log_metrics({"train/grad_noise_to_signal": noise / max(signal, 1e-30)}, step=trainer.global_step)


class ExportPolicy(Callback):
    """Write the trained policy and tokenizer as a Hugging Face directory (``save_pretrained``) when fit ends.

    Args:
        dirpath: output directory; ``from_pretrained(dirpath)`` loads it.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath

    def on_train_end(self, trainer, pl_module) -> None:
        save_policy(pl_module.model, pl_module.tokenizer, self.dirpath)  # every rank: gathers sharded weights
        if trainer.is_global_zero:
            log.info("exported the policy to %s", Path(self.dirpath))
