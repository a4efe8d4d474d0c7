"""GVM and GVM++ inside the real training loop: honest counting, closed-form allocation, checkpoints."""

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from gvmlit.algorithms import RAFT, GroupSettings, Optimization, RolloutSettings
from gvmlit.allocation import GVMAllocator, GVMPlusPlusAllocator, gvm_allocation
from gvmlit.data import ArithmeticTask, RolloutDataModule
from gvmlit.policy import PretrainedPolicy
from gvmlit.sampling import HFSampler
from gvmlit.verifiers import ArithmeticVerifier
from helpers import ROOT

SFT = str(ROOT / "models" / "arith-sft")


def _learner(allocator, lr=1e-5, **kwargs):
    return RAFT(
        policy=PretrainedPolicy(SFT), allocator=allocator, rollout=RolloutSettings(samples_per_prompt=4), optim=Optimization(lr=lr),
        sampler=HFSampler(max_new_tokens=40, progress=False), verifier=ArithmeticVerifier(progress=False), **kwargs,
    )  # fmt: skip


def _data(num_train=24):
    source = ArithmeticTask(num_train=num_train, num_val=0, seed=5)
    return RolloutDataModule(source=source, prompts_per_epoch=12, batch_size=16, prompt_template="{problem}=")


def _trainer(tmp_path, epochs, **kwargs):
    kwargs.setdefault("logger", False)
    return Trainer(
        max_epochs=epochs, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        default_root_dir=tmp_path, **kwargs,
    )  # fmt: skip


def test_gvm_allocates_by_the_closed_form_and_counts_pilots(tmp_path):
    torch.manual_seed(0)
    learner = _learner(GVMAllocator(pilot_samples=4))
    _trainer(tmp_path, 1, enable_checkpointing=False).fit(learner, datamodule=_data())
    result = learner.epoch_result
    p, g = result.allocation.acceptance_rate, result.allocation.grad_norm
    assert set(np.round(p * 4).astype(int)) <= set(range(5)) and 0 < p.mean() < 1  # fractions of N' = 4
    assert (g[p > 0] > 0).all() and (g[p == 0] == 0).all()
    assert result.allocation.samples.tolist() == gvm_allocation(p, g, 48).tolist()
    assert (result.allocation.samples[p == 0] == 0).all()
    # G_i is the mean gradient norm of the accepted pilots, recorded in the store
    for prompt, p_i in zip(result.prompts, p):
        norms = learner.store.history(prompt.uid).grad_norms
        assert len(norms) == (1 if p_i > 0 else 0) and all(o.count == round(p_i * 4) for o in norms)
    # honest budget: 12 × 4 pilot samples on top of N = 48, all counted; discarded pilots are not trained on
    assert learner.budget.samples("pilot") == 48 and learner.budget.samples("train") == 48
    assert result.metrics["budget/samples_generated"] == 96 and result.metrics["budget/epoch_pilot_samples"] == 48
    assert sum(len(group) for group in result.groups) == 48


def test_gvmpp_keeps_pilots_within_budget_and_reuses_statistics(tmp_path):
    torch.manual_seed(0)
    learner = _learner(GVMPlusPlusAllocator(pilot_samples=2, max_pilot_samples=4))
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(tmp_path, 2, callbacks=[checkpoints]).fit(learner, datamodule=_data(num_train=12))
    # epoch 0: every prompt is new → 12 × 2 pilots at least, kept and paid from N = 48 (never more than N)
    assert learner.budget.samples("pilot") >= 24
    assert learner.budget.training_samples <= 96
    result = learner.epoch_result
    sizes = [len(group) for group in result.groups]
    assert sum(sizes) == result.metrics["budget/epoch_samples"] <= 48
    # a prompt gets its pilots (2, or 4 when the first two were all wrong and more looked worth it), and a
    # prompt whose pilots held an accepted sample (RAFT's useful group) is completed to s = 4
    assert all(s in (0, 2, 4) for s in sizes) and max(sizes) <= 4
    history = learner.store.history(result.prompts[0].uid)
    assert history.samples >= 2 and {v.epoch for v in history.visits} >= {0}
    # the checkpoint carries the per-prompt statistics: resume into a fresh learner
    restored = _learner(GVMPlusPlusAllocator(pilot_samples=2))
    _trainer(tmp_path, 2).fit(restored, datamodule=_data(num_train=12), ckpt_path=checkpoints.last_model_path)
    assert restored.store.state_dict() == learner.store.state_dict() and restored.store.state_dict()
    assert restored.budget.state_dict() == learner.budget.state_dict()
    assert restored.allocator.state_dict() == learner.allocator.state_dict()


def test_dynamic_sampling_refills_until_enough_groups_carry_a_gradient(tmp_path):
    from gvmlit.algorithms import GRPO

    torch.manual_seed(0)
    learner = GRPO(
        policy=PretrainedPolicy(SFT), optim=Optimization(lr=1e-5), rollout=RolloutSettings(samples_per_prompt=4, max_rounds=3),
        groups=GroupSettings(dynamic_sampling=True),
        sampler=HFSampler(max_new_tokens=40, progress=False), verifier=ArithmeticVerifier(progress=False),
    )  # fmt: skip
    _trainer(tmp_path, 1, enable_checkpointing=False).fit(learner, datamodule=_data(num_train=60))
    result = learner.epoch_result
    rounds = int(result.metrics["rollout/rounds"])
    assert result.metrics["allocation/extra_prompts"] == 12 * (rounds - 1)
    assert rounds >= 2  # π0 solves the easy sums every time and never the hardest: zero-variance groups, refilled
    assert len(result.prompts) == 12 * rounds and learner.budget.samples("train") == 48 * rounds  # every round counted
    informative = [g for g in result.groups if len(g) >= 2 and min(c.reward for c in g) != max(c.reward for c in g)]
    assert result.metrics["rollout/informative_groups"] == len(informative)
    assert len(informative) >= 12 or rounds == 3  # enough groups, or the last allowed round
    kept_groups = {r.group for r in result.rollouts}
    assert len(kept_groups) == min(len(informative), 12)  # trains on as many groups as an epoch has prompts, no more
    assert all(len(result.groups[i]) >= 2 and len({c.reward for c in result.groups[i]}) == 2 for i in kept_groups)  # filtered


def test_gradient_spread_measures_how_much_minibatch_gradients_disagree(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    from helpers import read_scalars

    spreads = {}
    for name, batch in (("one_batch", 48), ("minibatches", 4)):
        torch.manual_seed(0)
        learner = _learner(None, lr=1e-30, keep_rejected=True)  # an update below float32's resolution: every step sees the same weights
        data = _data()
        data.batch_size, data.update_epochs = batch, 3
        trainer = _trainer(tmp_path, 1, enable_checkpointing=False, logger=TensorBoardLogger(tmp_path, name=name))
        trainer.fit(learner, datamodule=data)
        spreads[name] = read_scalars(tmp_path / name)["train/grad_noise_to_signal"][0][1]
    assert spreads["one_batch"] < 1e-6  # the same batch three times: the same gradient three times
    assert spreads["minibatches"] > 0.05
