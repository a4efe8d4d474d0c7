"""Rollout–trainer mismatch correction with the transformers sampler: its log-probs are the trainer's own,
so every weight is 1 up to float error — with the plain distribution and with top-p / top-k truncation
(both sides compute the processed distribution the sampler drew from)."""

import pytest
import torch
from lightning.pytorch import Trainer

from gvmlit.algorithms import GRPO, LossSettings, RolloutCorrection
from gvmlit.sampling import HFSampler
from helpers import small_data, small_learner


def _epoch(tmp_path, sampler, correction):
    torch.manual_seed(0)
    learner = small_learner(GRPO, samples_per_prompt=4, loss=LossSettings(correction=correction))
    learner.sampler = learner.eval_sampler = sampler
    Trainer(max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path).fit(learner, datamodule=small_data())  # fmt: skip
    return learner


@pytest.mark.parametrize(
    "sampler",
    [HFSampler(temperature=1.0, max_new_tokens=24, progress=False), HFSampler(temperature=0.8, top_p=0.7, top_k=8, max_new_tokens=24, progress=False)],
    ids=["plain", "top-p-top-k"],
)
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_weights_are_one_when_the_sampler_computes_what_the_trainer_does(tmp_path, sampler, level):
    learner = _epoch(tmp_path, sampler, RolloutCorrection(mode=level, action="mask", cap=1.001))
    metrics = learner.epoch_result.metrics
    weights = torch.tensor([w for r in learner.epoch_result.rollouts for w in r.correction])
    assert weights.numel() > 50 and torch.allclose(weights, torch.ones_like(weights), atol=5e-4)  # none masked at cap 1.001
    assert metrics["rollout/mismatch_kl"] < 1e-6 and metrics["rollout/mismatch_abs_logprob_diff"] < 1e-4
    assert metrics["rollout/mismatch_weight_cut_share"] == 0.0
    assert 0.9995 < metrics["rollout/mismatch_weight_min"] <= metrics["rollout/mismatch_weight_max"] < 1.0005
    assert "allocation/mismatch_kl_per_prompt" in learner.epoch_result.histograms


def test_auto_leaves_the_correction_off_for_a_sampler_with_the_trainers_log_probs(tmp_path):
    learner = _epoch(tmp_path, HFSampler(max_new_tokens=24, progress=False), RolloutCorrection())
    assert learner.correction == "off" and all(r.correction is None for r in learner.epoch_result.rollouts)
    assert learner.epoch_result.metrics["rollout/sampler_trainer_logprob_diff"] < 1e-4  # still measured (GRPO recomputes π_old)
