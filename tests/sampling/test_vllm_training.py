"""VLLMSampler in training, through the real CLI, Trainer and launcher (vLLM lane; skipped without vLLM).

1. A CPU recipe (GRPO, GVM allocation, 2 epochs at debug size) with VLLMSampler swapped in by one
   key, against the same recipe with HFSampler: the same π0 gives the same greedy accuracy, the
   engine serves the weights being trained (sampler log-probs equal the trainer's recomputed π_old
   every epoch), and both runs spend the same budget and learn.
2. The same recipe on two CPU processes (FSDP2 over gloo) started by Lightning's own launcher, which
   does not set ``RANK``: gvmlit sets the variables vLLM's ``external_launcher`` reads, each rank's
   engine generates its share, and the log-probs match the sharded trainer's.

Each run is a subprocess: vLLM's engine lives in the process that trains.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import QUIET, ROOT, read_scalars
from test_vllm import DEVICE, current_platform  # skips (or fails) this module as test_vllm

pytestmark = pytest.mark.vllm

#: where the CLI takes the sampler (one key swaps HFSampler for VLLMSampler)
SAMPLER_KEY = "--model.init_args.sampler"
RECIPE = ["--config", "recipes/cpu/grpo_gvm.yaml", "--config", "configs/trainer/cpu_debug.yaml"]
VLLM_CPU = f"{SAMPLER_KEY}=configs/sampler/vllm_cpu.yaml"
#: sampler against trainer log-probs, mean per token over an epoch's rollouts
LOGPROB_TOLERANCE = 1e-5


def gvmlit_fit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        env.pop(key, None)  # as a user's shell: whatever the launcher sets, it sets
    result = subprocess.run(
        [sys.executable, "-m", "gvmlit", "fit", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, f"gvmlit fit failed:\n{result.stderr[-6000:]}"
    return result


def values(scalars, tag: str) -> list[float]:
    assert tag in scalars, f"{tag} not logged; logged: {sorted(scalars)}"
    return [v for _, v in scalars[tag]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipes")
    scalars = {}
    for name, sampler in (("hf", []), ("vllm", [VLLM_CPU])):
        gvmlit_fit(*RECIPE, *sampler, *QUIET, f"--trainer.logger.init_args.save_dir={out / name}")
        scalars[name] = read_scalars(out / name / "grpo-gvm-seed0" / "version_0")
    return scalars


def test_the_same_start_gives_the_same_greedy_accuracy(runs):
    hf, vl = values(runs["hf"], "val/accuracy"), values(runs["vllm"], "val/accuracy")
    assert len(hf) == len(vl) == 3  # step 0 and after each of the 2 epochs
    assert vl[0] == hf[0]  # π0 decoded greedily by vLLM and by transformers


def test_the_engine_serves_the_weights_being_trained(runs):
    # epoch 1 samples after epoch 0's updates: the sync must have brought them into the engine
    diffs = values(runs["vllm"], "rollout/sampler_trainer_logprob_diff")
    print(f"\n[{DEVICE}] recipe with VLLMSampler: sampler vs trainer log-prob mean |diff| per epoch {diffs}")
    assert len(diffs) == 2 and max(diffs) < LOGPROB_TOLERANCE


def test_the_mismatch_correction_is_on_with_vllm_and_its_diagnostics_are_logged_and_small(runs):
    """loss.correction.mode: auto turns the correction on for VLLMSampler (its kernels are not the trainer's);
    with float32 on both sides the weights stay at 1 and the KL between them near 0."""
    kl, low, high = (values(runs["vllm"], f"rollout/mismatch_{k}") for k in ("kl", "weight_min", "weight_max"))
    cut = values(runs["vllm"], "rollout/mismatch_weight_cut_share")
    print(f"\n[{DEVICE}] mismatch KL per epoch {kl}, weights in [{min(low):.5f}, {max(high):.5f}], cut share {cut}")
    assert len(kl) == 2 and max(kl) < 1e-6 and min(low) > 0.999 and max(high) < 1.001 and max(cut) == 0.0
    assert "rollout/mismatch_kl" not in runs["hf"] or max(values(runs["hf"], "rollout/mismatch_kl")) < 1e-6


def test_training_learns_as_with_hf(runs):
    hf, vl = runs["hf"], runs["vllm"]
    for tag in ("budget/samples_generated", "budget/pilot_samples", "rollout/samples"):
        assert values(vl, tag) == values(hf, tag), tag  # the same budget, spent the same way
    for name, scalars in runs.items():
        assert all(v > 0 for v in values(scalars, "train/grad_norm")), name  # updates happened every epoch
        rewards = values(scalars, "verifier/correct")
        assert sum(rewards) > 0, name  # GRPO had signal to learn from
    # held-out accuracy after 2 epochs at debug size (8 prompts): noisy, but neither run may collapse
    final = {name: values(scalars, "val/accuracy")[-1] for name, scalars in runs.items()}
    start = values(hf, "val/accuracy")[0]
    print(f"\n[{DEVICE}] greedy accuracy at step 0: {start}; after 2 epochs: {final}")
    assert final["vllm"] >= start - 0.25 and final["hf"] >= start - 0.25
    assert abs(final["vllm"] - final["hf"]) <= 0.25


def test_two_processes_through_lightnings_launcher(tmp_path):
    if not current_platform.is_cpu():
        pytest.skip("the 2-process run is on CPU processes (gloo): it needs vLLM's CPU build")
    result = gvmlit_fit(
        *RECIPE, "--config", "configs/trainer/cpu_fsdp2.yaml", VLLM_CPU, *QUIET,
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    )  # fmt: skip
    assert "set RANK=0" in result.stderr  # Lightning's launcher left RANK unset; gvmlit set it for vLLM
    scalars = read_scalars(tmp_path / "grpo-gvm-seed0" / "version_0")
    assert values(scalars, "distributed/world_size") == [2.0, 2.0]
    for rank in (0, 1):  # each rank's engine generated its share
        assert all(v > 0 for v in values(scalars, f"distributed/rank{rank}_generated_samples")), rank
    assert values(scalars, "distributed/rank0_allocation_crc") == values(scalars, "distributed/rank1_allocation_crc")
    diffs = values(scalars, "rollout/sampler_trainer_logprob_diff")  # gathered from the shards, all ranks
    print(f"\n[{DEVICE}] 2 processes: sampler vs sharded trainer log-prob mean |diff| per epoch {diffs}")
    assert len(diffs) == 2 and max(diffs) < LOGPROB_TOLERANCE
