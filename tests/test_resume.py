"""Reliability: exact resume, a SIGKILL mid-epoch, atomic checkpoint writes, non-finite guards."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from gvmlit.algorithms import RAFT
from gvmlit.allocation import GVMAllocator
from gvmlit.data import ArithmeticTask, RolloutDataModule
from gvmlit.errors import GvmlitError
from gvmlit.policy import PretrainedPolicy
from gvmlit.sampling import HFSampler
from gvmlit.verifiers import ArithmeticVerifier
from helpers import ROOT, read_scalars

SFT = str(ROOT / "models" / "arith-sft")


class RecordAllocations(Callback):
    def __init__(self):
        self.allocations = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.allocations[trainer.current_epoch] = trainer.datamodule.last_allocation.tolist()


def _fit(tmp_path, name, epochs, ckpt_path=None, callbacks=()):
    seed_everything(7)
    data = RolloutDataModule(
        source=ArithmeticTask(num_train=40, num_val=16, seed=2),
        sampler=HFSampler(max_new_tokens=40, progress=False),
        verifier=ArithmeticVerifier(progress=False),
        allocator=GVMAllocator(pilot_samples=4),
        prompts_per_epoch=10, samples_per_prompt=4, batch_size=8, update_epochs=2, prompt_template="{problem}=",
        val_samples=2,
    )  # fmt: skip
    module = RAFT(policy=PretrainedPolicy(SFT), variant="raft++", lr=1e-4, kl_coef=0.01)
    recorder = RecordAllocations()
    trainer = Trainer(
        max_epochs=epochs, reload_dataloaders_every_n_epochs=1, num_sanity_val_steps=0, enable_progress_bar=False,
        enable_model_summary=False, logger=TensorBoardLogger(tmp_path, name=name), default_root_dir=tmp_path,
        callbacks=[recorder, *callbacks], log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return recorder.allocations, data


def test_resume_reproduces_the_straight_run(tmp_path):
    straight, data_straight = _fit(tmp_path, "straight", 4)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first, _ = _fit(tmp_path, "first", 2, callbacks=[checkpoint])
    resumed, data_resumed = _fit(tmp_path, "resumed", 4, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert sorted(resumed) == [2, 3]
    for epoch in range(4):
        part = first if epoch < 2 else resumed
        assert part[epoch] == straight[epoch], epoch  # identical GVM allocations n_i every epoch
    assert len(set(map(tuple, straight.values()))) > 1 and max(max(a) for a in straight.values()) > 4
    assert data_resumed.counters == data_straight.counters
    assert data_resumed.store.state_dict() == data_straight.store.state_dict()
    a, b = read_scalars(tmp_path / "straight"), read_scalars(tmp_path / "resumed")
    for tag in ("train/loss", "rollout/acceptance_rate", "budget/samples_generated", "val/accuracy", "val/mean@2", "train/kl"):
        late = [(s, v) for s, v in a[tag] if s >= min(step for step, _ in b[tag])]
        assert [s for s, _ in late] == [s for s, _ in b[tag]], tag
        assert [v for _, v in late] == pytest.approx([v for _, v in b[tag]], rel=1e-5, abs=1e-6), tag


def test_sigkill_mid_epoch_then_resume_from_last(tmp_path):
    args = [
        sys.executable, "-u", "-m", "gvmlit", "fit", "--config", "recipes/cpu/raft_uniform.yaml",
        "--trainer.max_epochs=6", "--data.init_args.prompts_per_epoch=16", "--data.init_args.samples_per_prompt=4",
        "--data.init_args.val_size=64", "--data.init_args.val_samples=2", f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false", "--data.init_args.sampler.init_args.progress=false",
        "--data.init_args.verifier.init_args.progress=false",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "first.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    last = tmp_path / "raft_uniform" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:  # kill once epoch 1 trains, after a checkpoint
        if last.exists() and "epoch 1:" in log_path.read_text():
            break
        time.sleep(0.05)
    assert proc.poll() is None, log_path.read_text()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(last, weights_only=True, map_location="cpu")
    assert saved["epoch"] >= 0 and saved["global_step"] > 0
    before = read_scalars(tmp_path / "raft_uniform" / "version_0")
    resume = subprocess.run([*args, "--ckpt_path", "last"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert "Restoring states from the checkpoint path at" in resume.stderr + resume.stdout
    # the killed run's logs are intact; the resumed run logs the remaining epochs into a new version
    assert read_scalars(tmp_path / "raft_uniform" / "version_0") == before
    after = read_scalars(tmp_path / "raft_uniform" / "version_1")
    assert after["epoch"][-1][1] == 5.0 and after["epoch"][0][1] == saved["epoch"] + 1
    assert torch.load(last, weights_only=True, map_location="cpu")["epoch"] == 5


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    from fsspec.implementations.local import LocalFileOpener

    module = RAFT(policy=PretrainedPolicy(SFT))
    trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.strategy.connect(module)
    module.configure_model()
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    good = (tmp_path / "last.ckpt").read_bytes()

    original = LocalFileOpener.write

    def crash_half_way(self, data):
        original(self, data[: len(data) // 2])
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(LocalFileOpener, "write", crash_half_way)
    with torch.no_grad():
        module.model.lm_head.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert (tmp_path / "last.ckpt").read_bytes() == good
    assert "state_dict" in torch.load(tmp_path / "last.ckpt", weights_only=True)


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_nonfinite_loss_guard(mode):
    from test_algorithms import _batch, _module

    module = _module(RAFT, variant="raft++", nonfinite=mode)
    batch = _batch(module, [1.0, 1.0, 1.0])
    batch["old_logprobs"][0, :] = float("nan")
    if mode == "stop":
        with pytest.raises(GvmlitError, match=r"train/loss is nan at step 0 \(epoch 0, batch 3\); stopping"):
            module.training_step(batch, 3)
    else:
        assert module.training_step(batch, 3) is None and module.skipped_batches == 1


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_nonfinite_gradient_guard(mode):
    from test_algorithms import _module

    module = _module(RAFT, nonfinite=mode)
    for p in module.model.parameters():
        p.grad = torch.zeros_like(p)
    module.model.lm_head.weight.grad[0, 0] = float("inf")
    if mode == "stop":
        with pytest.raises(GvmlitError, match=r"train/grad_norm is inf at step 0 \(epoch 0\); stopping"):
            module.on_before_optimizer_step(None)
    else:
        module.on_before_optimizer_step(None)
        assert all(p.grad is None for p in module.model.parameters()) and module.skipped_batches == 1


def test_sampler_out_of_memory_says_what_to_lower(tiny_policy, monkeypatch):
    model, tokenizer = tiny_policy
    sampler = HFSampler(max_new_tokens=8, batch_size=4, progress=False)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(sampler, "_generate_batch", out_of_memory)
    with pytest.raises(GvmlitError, match=r"ran out of memory generating 3 sequences .* lower data.sampler.init_args.batch_size \(now 4\)"):
        sampler.generate(model, tokenizer, [[5, 6]], [3])


def test_missing_checkpoint_is_one_line(tmp_path):
    from test_cli import _cli_error

    line = _cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", f"--trainer.logger.init_args.save_dir={tmp_path}",
                      "--ckpt_path", "last")  # fmt: skip
    assert f"--ckpt_path last: no last.ckpt in {tmp_path}/raft_uniform/checkpoints; nothing to resume" in line
    assert "checkpoint file not found" in _cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", "--ckpt_path", str(tmp_path / "x.ckpt"))


def test_overlong_prompts_can_be_skipped_and_are_counted(tmp_path):
    data = RolloutDataModule(
        source=ArithmeticTask(num_train=30, num_val=0, levels=[(2, 1), (5, 2)], seed=1),
        sampler=HFSampler(max_new_tokens=115, progress=False), verifier=ArithmeticVerifier(progress=False),
        prompts_per_epoch=4, samples_per_prompt=1, prompt_template="{problem}=", overlong_prompts="skip",
    )  # fmt: skip
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(RAFT(policy=PretrainedPolicy(SFT)), datamodule=data)
    # 5-term prompts are 15 characters: 15 + 115 > 128, so the 15 of them are skipped, the 2-term ones kept
    assert data.skipped_prompts == 15 and len(data.train_records()) == 15


def test_export_of_a_single_file_checkpoint_equals_the_trained_policy(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gvmlit.cli import main

    _, data = _fit(tmp_path, "export", 1, callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    trained = data.trainer.lightning_module.model.state_dict()
    main(["export", str(tmp_path / "ckpt" / "last.ckpt"), str(tmp_path / "hf")])
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").state_dict()
    assert exported.keys() == trained.keys()
    assert all(torch.equal(exported[k], trained[k]) for k in trained)
    start = AutoModelForCausalLM.from_pretrained(SFT).state_dict()
    assert any(not torch.equal(exported[k], start[k]) for k in start)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tokenizer("7+8=")["input_ids"] == AutoTokenizer.from_pretrained(SFT)("7+8=")["input_ids"]


def test_export_errors_are_one_line(tmp_path):
    from test_cli import _cli_error

    assert f"checkpoint {tmp_path / 'missing.ckpt'} not found" in _cli_error("export", str(tmp_path / "missing.ckpt"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    assert "is not a gvmlit checkpoint" in _cli_error("export", str(tmp_path / "empty"), str(tmp_path / "out"))
