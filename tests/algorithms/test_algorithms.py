"""The LightningModules' training step against hand computations on a real tiny model."""

import pytest
import torch
from lightning.pytorch import Trainer

from gvmlit.algorithms import GRPO, RAFT, GroupSettings, LossSettings, Optimization
from gvmlit.collate import collate_rollouts
from gvmlit.forward import batch_logprobs
from gvmlit.policy import TinyCharPolicy
from gvmlit.records import Rollout
from gvmlit.sampling import HFSampler

POLICY = TinyCharPolicy(hidden_size=32, num_layers=1, num_heads=2, max_length=64, seed=3)


def _module(cls, temperature=1.0, loss=None, groups=None, nonfinite="stop", **kwargs):
    if groups is not None:
        kwargs["groups"] = GroupSettings(**groups)
    module = cls(policy=POLICY, sampler=HFSampler(temperature=temperature), loss=LossSettings(**(loss or {})), optim=Optimization(nonfinite=nonfinite), **kwargs)
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)  # a real Trainer's strategy (reductions), no fit
    module.trainer = trainer
    module.configure_model()
    module.buffer.epoch = module.current_epoch  # as if the epoch's rollouts had been collected
    module.log = lambda *a, **k: None  # outside a fit loop, Lightning's self.log has nowhere to write
    module.log_dict = lambda *a, **k: None
    return module


def _batch(module, advantages, perturb_old=0.0):
    tok = module.tokenizer
    rollouts = [
        Rollout(tok("12+3=")["input_ids"], tok("15;#### 15", add_special_tokens=False)["input_ids"], 1.0, advantages[0], 0),
        Rollout(tok("4+4=")["input_ids"], tok("9;#### 9", add_special_tokens=False)["input_ids"], 0.0, advantages[1], 0),
        Rollout(tok("7=")["input_ids"], tok("7;####", add_special_tokens=False)["input_ids"], 1.0, advantages[2], 1),
    ]
    batch = collate_rollouts(rollouts, tok.pad_token_id)
    with torch.no_grad():
        old, _ = batch_logprobs(module.model, batch, module.loss_temperature)
    batch["old_logprobs"] = old + perturb_old
    return batch


def test_grpo_first_step_loss_is_minus_mean_advantage_per_token():
    module = _module(GRPO, temperature=0.7, loss={"aggregation": "token_mean"})
    assert module.loss_temperature == 0.7  # ratios are taken at the sampling temperature
    batch = _batch(module, [1.5, -0.5, 2.0])
    loss = module.training_step(batch, 0)
    mask = batch["response_mask"].float()
    # ratio = 1 everywhere (π_old = π_θ): loss_t = −A_j, token mean over the batch
    expected = -(batch["advantages"].unsqueeze(-1) * mask).sum() / mask.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_grpo_clipping_with_stale_old_logprobs():
    module = _module(GRPO, loss={"clip_low": 0.2, "clip_high": 0.28, "aggregation": "seq_mean_token_mean"})
    # π_old lower by log 2: ratio = 2 > 1.28 → positive advantages are clipped (constant 1.28·A), negative not
    batch = _batch(module, [1.0, -1.0, 1.0], perturb_old=-torch.log(torch.tensor(2.0)).item())
    loss = module.training_step(batch, 0)
    # per-sequence token means: −1.28, +2.0, −1.28 → mean
    assert loss.item() == pytest.approx((-1.28 + 2.0 - 1.28) / 3, rel=1e-4)


def test_raft_vanilla_is_nll_and_kl_starts_at_zero():
    module = _module(RAFT, variant="raft", loss={"kl_coef": 0.1})
    batch = _batch(module, [1.0, 1.0, 1.0])
    loss = module.training_step(batch, 0)
    mask = batch["response_mask"].float()
    # reference = the initial policy: k3 KL is exactly 0 at the first step
    expected = -(batch["old_logprobs"] * mask).sum() / mask.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_raftpp_keeps_only_accepted_unless_asked():
    module = _module(RAFT, variant="raft++")
    rewards = torch.tensor([1.0, 0.0, 1.0])
    accepted = rewards >= 1
    useful = torch.tensor([True, True, True])
    adv, keep, _ = module.rollout_advantages(rewards, accepted, torch.tensor([0, 0, 1]), useful)
    assert adv.tolist() == [1.0, 0.0, 1.0] and keep.tolist() == [True, False, True]
    module.keep_rejected = True
    assert module.rollout_advantages(rewards, accepted, torch.tensor([0, 0, 1]), useful)[1].all()


def test_zero_variance_filter_and_singletons():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3])  # all-correct, mixed, all-wrong, singleton
    useful = torch.tensor([False, False, True, True, False, False, False])  # gvmlit.groups.carries_gradient (mixed)
    module = _module(GRPO, groups={"filter_zero_variance": True})
    adv, keep, metrics = module.rollout_advantages(rewards, rewards >= 1, groups, useful)
    assert keep.tolist() == [False, False, True, True, False, False, False]  # singleton dropped by default
    assert metrics["rollout/zero_variance_groups"] == pytest.approx(2 / 4)
    assert metrics["rollout/singleton_groups"] == pytest.approx(1 / 4)
    module = _module(GRPO, groups={"singleton_groups": "zero"})
    adv, keep, _ = module.rollout_advantages(rewards, rewards >= 1, groups, useful)
    assert keep.all() and adv[-1] == 0 and adv[0] == 0  # no filter: all-equal groups kept with A = 0


def test_an_empty_batch_is_skipped_without_an_update():
    module = _module(GRPO)
    empty = collate_rollouts([], module.tokenizer.pad_token_id)
    assert empty["input_ids"].shape[0] == 0
    assert module.training_step(empty, 0) is None
