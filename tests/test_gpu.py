"""Checks only a CUDA GPU can make (skipped elsewhere, with the reason). On a GPU machine:

    python -m pytest -q -m gpu --runslow

bfloat16 training through the real CLI, FSDP2 over NCCL on the GPUs present, LoRA's memory against full
fine-tuning, and vLLM's CUDA engine with the mismatch correction (when vLLM's CUDA build is installed).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from helpers import QUIET, ROOT, read_scalars

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

GPU = ["--trainer.accelerator=gpu", "--trainer.devices=1", "--config", "configs/trainer/cpu_debug.yaml", "--trainer.max_epochs=2"]


def _fit(tmp_path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "gvmlit", "fit", *args, f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_bfloat16_training_on_the_gpu(tmp_path):
    _fit(tmp_path, "--config", "recipes/cpu/grpo_uniform.yaml", *GPU, "--trainer.precision=bf16-true",
         "--model.init_args.policy.init_args.dtype=bfloat16")  # fmt: skip
    scalars = read_scalars(tmp_path / "grpo-uniform-seed0")
    assert all(torch.isfinite(torch.tensor(v)) for _, v in scalars["train/loss"])
    assert max(v for _, v in scalars["rollout/sampler_trainer_logprob_diff"]) < 0.05  # bf16 on both sides, the same kernels


def test_fsdp2_over_nccl_on_the_gpus_present(tmp_path):
    devices = torch.cuda.device_count()
    _fit(tmp_path, "--config", "recipes/cpu/grpo_gvm.yaml", "--config", "configs/trainer/cpu_debug.yaml", "--trainer.max_epochs=2",
         "--trainer.accelerator=gpu", f"--trainer.devices={devices}", "--trainer.strategy=gvmlit.parallel.FSDP2Strategy",
         "--trainer.strategy.init_args.param_dtype=bfloat16")  # fmt: skip
    scalars = read_scalars(tmp_path / "grpo-gvm-seed0")
    assert [v for _, v in scalars["distributed/world_size"]] == [float(devices)] * 2 or devices == 1


def test_lora_needs_less_gpu_memory_than_full_fine_tuning():
    from transformers import LlamaConfig, LlamaForCausalLM

    from gvmlit.lora import LoraSettings, add_adapters

    peaks = {}
    for mode in ("full", "lora"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=12, num_attention_heads=16)
        model = LlamaForCausalLM(config).cuda()
        if mode == "lora":
            model = add_adapters(model, LoraSettings(rank=16, alpha=32.0))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        batch = torch.randint(0, 32000, (8, 256), device="cuda")
        for _ in range(2):
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        peaks[mode] = torch.cuda.max_memory_allocated()
        del model, optimizer
    print(f"\npeak GPU memory: full {peaks['full'] / 2**30:.2f} GiB, LoRA {peaks['lora'] / 2**30:.2f} GiB ({peaks['lora'] / peaks['full']:.2f}x)")
    assert peaks["lora"] < 0.7 * peaks["full"]


def test_vllm_on_cuda_with_the_mismatch_correction(tmp_path):
    pytest.importorskip("vllm", reason="vLLM's CUDA build: pip install 'gvmlit[vllm]'")
    _fit(tmp_path, "--config", "recipes/cpu/grpo_uniform.yaml", *GPU, "--model.init_args.sampler=configs/sampler/vllm_paper.yaml",
         "--model.init_args.sampler.init_args.max_new_tokens=64", "--model.init_args.policy.init_args.dtype=bfloat16",
         "--trainer.precision=bf16-true")  # fmt: skip
    scalars = read_scalars(tmp_path / "grpo-uniform-seed0")
    kl = [v for _, v in scalars["rollout/mismatch_kl"]]
    print(f"\nvLLM bf16 against the trainer: mismatch KL per epoch {kl}")
    assert kl and all(torch.isfinite(torch.tensor(v)) for v in kl)
