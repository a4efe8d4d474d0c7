"""Scale-out on CPU: FSDP2 over two gloo processes through the real CLI, Trainer and launcher.

One training run of 2 epochs (GVM allocation, GRPO), resumed for a third epoch from its distributed
checkpoint, then exported with ``gvmlit export``; the assertions read the TensorBoard files, the
checkpoint directory and the exported model back.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gvmlit.parallel import balanced_partition, rank_share
from helpers import QUIET, ROOT, read_scalars


def read_scalars_of(event_files) -> dict:
    """The scalars of the given event files only (one run directory holds the first and the resumed run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict = {}
    for path in event_files:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return scalars

# ---------------------------------------------------------------------- partitions (pure)


def test_balanced_partition_balances_tokens_not_counts():
    costs = [100, 100, 100, 100, 1, 1, 1, 1]  # split by count in order, rank 0 would get 400 tokens and rank 1 4
    parts = balanced_partition(costs, 2)
    assert [len(p) for p in parts] == [4, 4]
    assert sorted(sum(costs[i] for i in p) for p in parts) == [202, 202]
    assert sorted(i for p in parts for i in p) == list(range(8))


def test_balanced_partition_equal_counts_drop_the_cheapest_remainder():
    rng = np.random.default_rng(0)
    costs = rng.integers(1, 80, size=103).tolist()
    parts = balanced_partition(costs, 4)
    assert [len(p) for p in parts] == [25] * 4
    used = [i for p in parts for i in p]
    assert len(set(used)) == 100
    left = sorted(set(range(103)) - set(used))
    assert max(costs[i] for i in left) <= min(costs[i] for i in used)  # the 3 cheapest are left out
    sums = [sum(costs[i] for i in p) for p in parts]
    assert max(sums) - min(sums) <= max(costs)  # greedy LPT: within one item of each other
    assert all(p == sorted(p) for p in parts)


def test_one_part_is_the_identity_and_rank_shares_cover_everything_once():
    assert balanced_partition([3, 1, 2], 1) == [[0, 1, 2]]
    costs = [5, 0, 0, 9, 2, 7, 1]
    shares = [rank_share(costs, r, 3) for r in range(3)]
    assert sorted(i for s in shares for i in s) == list(range(7))  # uneven sizes allowed, nothing dropped
    assert rank_share(costs, 0, 1) == list(range(7))


def _sharded_grad_norm(rank: int, port: int, results) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from gvmlit.algorithms.base import gradient_norm

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
        fully_shard(model, mesh=init_device_mesh("cpu", (2,)))
        torch.manual_seed(1)
        model(torch.randn(5, 8)).pow(2).sum().backward()  # the same batch on both ranks
        results[rank] = float(gradient_norm(model))
    finally:
        dist.destroy_process_group()


def test_grad_norm_of_sharded_gradients_is_the_global_norm():
    import socket

    import torch.multiprocessing as mp

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    torch.manual_seed(1)
    model(torch.randn(5, 8)).pow(2).sum().backward()
    expected = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").Manager().dict()
    mp.start_processes(_sharded_grad_norm, args=(port, results), nprocs=2, start_method="spawn")
    assert results[0] == pytest.approx(expected, rel=1e-5) and results[1] == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------- two processes, FSDP2, gloo

SMALL = [
    "--data.init_args.prompts_per_epoch=16",
    "--model.init_args.rollout.samples_per_prompt=4",
    "--data.init_args.batch_size=16",
    "--data.init_args.val_size=16",
    "--model.init_args.evaluation.samples=2",
]


def _gvmlit(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, "-m", "gvmlit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"gvmlit {args[0]} failed:\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    export_overlay = out / "export.yaml"
    export_overlay.write_text(
        "trainer:\n  callbacks:\n    - class_path: gvmlit.callbacks.ExportPolicy\n"
        f"      init_args: {{dirpath: {out / 'exported_at_end'}}}\n"
    )
    common = [
        "--config", "recipes/cpu/grpo_gvm.yaml", "--config", "configs/trainer/cpu_fsdp2.yaml",
        f"--trainer.logger.init_args.save_dir={out}", *QUIET, *SMALL,
        "--model.init_args.policy.init_args.gradient_checkpointing=true",  # activation checkpointing under FSDP2
    ]  # fmt: skip
    first = _gvmlit("fit", *common, "--trainer.max_epochs=2")
    first_scalars = read_scalars(out / "grpo-gvm-seed0" / "version_0")
    first_events = {p.name for p in (out / "grpo-gvm-seed0" / "version_0").glob("events.out.tfevents.*")}
    # the third epoch computes in bfloat16 (FSDP2 mixed precision) over the float32 master weights
    resumed = _gvmlit(
        "fit", *common, "--config", str(export_overlay), "--trainer.max_epochs=3", "--ckpt_path=last",
        "--trainer.strategy.init_args.param_dtype=bfloat16",
    )  # fmt: skip
    checkpoint = out / "grpo-gvm-seed0" / "version_0" / "checkpoints" / "last.ckpt"
    _gvmlit("export", str(out / "grpo-gvm-seed0" / "last.ckpt"), str(out / "exported"))  # the newest run's, through the link
    resumed_events = sorted(p for p in (out / "grpo-gvm-seed0" / "version_0").glob("events.out.tfevents.*") if p.name not in first_events)
    return {
        "out": out,
        "first": first,
        "first_scalars": first_scalars,
        "resumed": resumed,
        "resumed_scalars": read_scalars_of(resumed_events),  # the resumed run logs into the same run directory
        "checkpoint": checkpoint,
    }


@pytest.mark.slow
def test_both_ranks_generate_and_all_agree_on_the_allocation(fsdp_run):
    scalars = fsdp_run["first_scalars"]
    assert [v for _, v in scalars["distributed/world_size"]] == [2.0, 2.0]
    crc0 = [v for _, v in scalars["distributed/rank0_allocation_crc"]]
    assert crc0 == [v for _, v in scalars["distributed/rank1_allocation_crc"]]  # the same n_i on both ranks
    assert len(set(crc0)) == 2  # and not a constant: GVM allocated differently in the two epochs
    rank0 = [v for _, v in scalars["distributed/rank0_generated_samples"]]
    rank1 = [v for _, v in scalars["distributed/rank1_generated_samples"]]
    epoch_samples = [v for _, v in scalars["budget/epoch_samples"]]
    assert all(r > 0 for r in rank0 + rank1)
    # every generated sample is counted once, globally: 16 prompts × (8 pilots + 4) per epoch
    assert [a + b for a, b in zip(rank0, rank1)] == epoch_samples == [16 * 12.0] * 2
    assert [v for _, v in scalars["budget/samples_generated"]] == [192.0, 384.0]


@pytest.mark.slow
def test_rollouts_are_split_by_tokens_and_training_is_sharded(fsdp_run):
    scalars = fsdp_run["first_scalars"]
    for (_, t0), (_, t1) in zip(scalars["distributed/rank0_train_tokens"], scalars["distributed/rank1_train_tokens"]):
        assert t0 > 0 and t1 > 0
        assert abs(t0 - t1) <= 64 + 20  # within one rollout (≤ 64 response + prompt tokens) of each other
    assert all(np.isfinite(v) for _, v in scalars["train/grad_norm"])
    # π_old recomputed by the sharded policy equals what the sampler's replica reported
    assert all(v < 1e-4 for _, v in scalars["rollout/sampler_trainer_logprob_diff"])
    checkpoint = fsdp_run["checkpoint"]
    assert checkpoint.is_dir() and (checkpoint / ".metadata").is_file() and (checkpoint / "meta.pt").is_file()
    assert sorted(p.name for p in checkpoint.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # one shard per rank


@pytest.mark.slow
def test_resume_continues_the_run(fsdp_run):
    first, resumed = fsdp_run["first_scalars"], fsdp_run["resumed_scalars"]
    assert "Restored all states" in fsdp_run["resumed"].stdout + fsdp_run["resumed"].stderr
    assert {v for _, v in resumed["epoch"]} == {2.0}  # only the third epoch ran
    # counters, optimiser step and per-prompt state came back: the budget and the step continue
    assert [v for _, v in resumed["budget/samples_generated"]] == [384.0 + 192.0]
    assert min(s for s, _ in resumed["train/loss"]) > max(s for s, _ in first["train/loss"])
    assert resumed["allocation/prompts_tracked"][0][1] >= first["allocation/prompts_tracked"][-1][1]


@pytest.mark.slow
def test_mixed_precision_computes_in_bfloat16_over_float32_master_weights(fsdp_run):
    first, resumed = fsdp_run["first_scalars"], fsdp_run["resumed_scalars"]
    # float32 compute reproduces the float32 replica's log-probs; bfloat16 compute does not
    assert max(v for _, v in first["rollout/sampler_trainer_logprob_diff"]) < 1e-5
    assert min(v for _, v in resumed["rollout/sampler_trainer_logprob_diff"]) > 1e-4
    exported = AutoModelForCausalLM.from_pretrained(fsdp_run["out"] / "exported", dtype="auto")
    assert {p.dtype for p in exported.parameters()} == {torch.float32}  # the checkpoint kept the master weights


@pytest.mark.slow
def test_export_loads_with_from_pretrained_and_has_the_trained_weights(fsdp_run):
    out = fsdp_run["out"]
    exported = AutoModelForCausalLM.from_pretrained(out / "exported")
    at_end = AutoModelForCausalLM.from_pretrained(out / "exported_at_end")  # gathered from the live sharded model
    start = AutoModelForCausalLM.from_pretrained(ROOT / "models" / "arith-sft")
    a, b, s = exported.state_dict(), at_end.state_dict(), start.state_dict()
    assert a.keys() == b.keys() == s.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the checkpoint holds exactly the final weights
    assert any(not torch.equal(a[k], s[k]) for k in a)  # and they were trained
    tokenizer = AutoTokenizer.from_pretrained(out / "exported")
    assert tokenizer.decode(tokenizer("12+3=")["input_ids"], skip_special_tokens=True) == "12+3="


# ---------------------------------------------------------------------- one-line errors


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--trainer.strategy.class_path=gvmlit.parallel.FSDP2Strategy"], "FSDP2Strategy needs CUDA GPUs"),
        (["--trainer.accelerator=gpu"], "this machine has no CUDA GPU"),
        (["--trainer.strategy=fsdp"], "gvmlit shards with FSDP2"),
    ],
)
def test_fsdp_or_gpu_without_a_gpu_is_a_one_line_error(tmp_path, override, expected):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "gvmlit", "fit", "--config", "recipes/cpu/raft_uniform.yaml",
         "--config", "configs/trainer/cpu_debug.yaml", f"--trainer.logger.init_args.save_dir={tmp_path}", *override],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("gvmlit: error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_lora_under_fsdp2_trains_resumes_and_exports(tmp_path):
    """LoRA adapters on a policy sharded over two gloo processes: only the adapters train, the distributed
    checkpoint resumes, and export merges the adapters into the frozen π0."""
    import torch
    from transformers import AutoModelForCausalLM

    common = ["--config", "recipes/cpu/grpo_lora.yaml", "--config", "configs/trainer/cpu_fsdp2.yaml", *SMALL, *QUIET,
              f"--trainer.logger.init_args.save_dir={tmp_path}"]  # fmt: skip
    _gvmlit("fit", *common, "--trainer.max_epochs=1")
    resumed = _gvmlit("fit", *common, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert "Restored all states" in resumed.stderr + resumed.stdout and "epoch 1:" in resumed.stderr
    run = tmp_path / "grpo-lora-uniform-seed0"
    _gvmlit("export", str(run / "last.ckpt"), str(tmp_path / "exported"))
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "exported").state_dict()
    base = AutoModelForCausalLM.from_pretrained(ROOT / "models" / "arith-sft").state_dict()
    changed = {k for k in base if not torch.equal(base[k], exported[k])}
    assert changed and all(k.endswith("proj.weight") for k in changed)  # the adapted linear layers, merged; nothing else moved
