"""GVM and GVM++ inside the real training loop: honest counting, closed-form allocation, checkpoints."""

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from gvmlit.algorithms import RAFT
from gvmlit.allocation import GVMAllocator, GVMPlusPlusAllocator, gvm_allocation
from gvmlit.data import ArithmeticTask, RolloutDataModule
from gvmlit.policy import PretrainedPolicy
from gvmlit.sampling import HFSampler
from gvmlit.verifiers import ArithmeticVerifier
from helpers import ROOT

SFT = str(ROOT / "models" / "arith-sft")


def _data(allocator, num_train=24):
    return RolloutDataModule(
        source=ArithmeticTask(num_train=num_train, num_val=0, seed=5),
        sampler=HFSampler(max_new_tokens=40, progress=False),
        verifier=ArithmeticVerifier(progress=False),
        allocator=allocator,
        prompts_per_epoch=12,
        samples_per_prompt=4,
        batch_size=16,
        prompt_template="{problem}=",
    )


def _trainer(tmp_path, epochs, **kwargs):
    return Trainer(
        max_epochs=epochs, reload_dataloaders_every_n_epochs=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path, **kwargs,
    )  # fmt: skip


def test_gvm_allocates_by_the_closed_form_and_counts_pilots(tmp_path):
    torch.manual_seed(0)
    data = _data(GVMAllocator(pilot_samples=4))
    _trainer(tmp_path, 1, enable_checkpointing=False).fit(RAFT(policy=PretrainedPolicy(SFT), lr=1e-5), datamodule=data)
    stats, allocation = data.last_stats, data.last_allocation
    p = stats.acceptance_rate
    assert set(np.round(p * 4).astype(int)) <= set(range(5)) and 0 < p.mean() < 1  # fractions of N' = 4
    assert (stats.grad_norm[p > 0] > 0).all() and (stats.grad_norm[p == 0] == 0).all()
    assert allocation.tolist() == gvm_allocation(p, stats.grad_norm, 48).tolist()
    assert (allocation[p == 0] == 0).all()
    # honest budget: 12 × 4 pilot samples on top of N = 48, all counted
    assert data.counters["pilot_samples"] == 48 and data.counters["train_samples"] == 48
    assert data.epoch_metrics["budget/samples_generated"] == 96
    assert data.epoch_metrics["budget/epoch_pilot_samples"] == 48


def test_gvmpp_keeps_pilots_within_budget_and_reuses_statistics(tmp_path):
    torch.manual_seed(0)
    data = _data(GVMPlusPlusAllocator(pilot_samples=2, min_samples=1, max_samples=8), num_train=12)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    module = RAFT(policy=PretrainedPolicy(SFT), lr=1e-5)
    _trainer(tmp_path, 2, callbacks=[checkpoints]).fit(module, datamodule=data)
    # epoch 0: every prompt is new → 12 × 2 pilots, kept and paid from N = 48; epoch 1: same prompts, no pilot
    assert data.counters["pilot_samples"] == 24
    assert data.counters["train_samples"] == 48 - 24 + 48
    assert data.samples_generated == 96  # exactly the budget: nothing generated on top
    entry = data.store.get(data.epoch_prompts(1)[0].uid)
    assert entry.samples >= 2 and len(entry.history) >= 2
    # the checkpoint carries the per-prompt statistics: resume into a fresh data module
    restored = _data(GVMPlusPlusAllocator(pilot_samples=2), num_train=12)
    _trainer(tmp_path, 2, callbacks=[]).fit(
        RAFT(policy=PretrainedPolicy(SFT), lr=1e-5), datamodule=restored, ckpt_path=checkpoints.last_model_path
    )
    assert restored.store.state_dict() == data.store.state_dict()
    assert restored.counters == data.counters
    assert restored.store.state_dict()  # not trivially empty
