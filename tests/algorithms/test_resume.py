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

from gvmlit.algorithms import RAFT, EvaluationSettings, LossSettings, Optimization, RolloutSettings
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

    def on_train_epoch_end(self, trainer, pl_module):
        self.allocations[trainer.current_epoch] = pl_module.epoch_result.allocation.samples.tolist()


def _fit(tmp_path, name, epochs, ckpt_path=None, callbacks=()):
    seed_everything(7)
    data = RolloutDataModule(
        source=ArithmeticTask(num_train=40, num_val=16, seed=2),
        prompts_per_epoch=10, batch_size=8, update_epochs=2, prompt_template="{problem}=",
    )  # fmt: skip
    module = RAFT(
        policy=PretrainedPolicy(SFT), variant="raft++", optim=Optimization(lr=1e-4), loss=LossSettings(kl_coef=0.01),
        allocator=GVMAllocator(pilot_samples=4), sampler=HFSampler(max_new_tokens=40, progress=False),
        verifier=ArithmeticVerifier(progress=False), rollout=RolloutSettings(samples_per_prompt=4), evaluation=EvaluationSettings(samples=2),
    )  # fmt: skip
    recorder = RecordAllocations()
    trainer = Trainer(
        max_epochs=epochs, enable_progress_bar=False,
        enable_model_summary=False, logger=TensorBoardLogger(tmp_path, name=name), default_root_dir=tmp_path,
        callbacks=[recorder, *callbacks], log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return recorder.allocations, module


def test_resume_reproduces_the_straight_run(tmp_path):
    straight, learner_straight = _fit(tmp_path, "straight", 4)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first, _ = _fit(tmp_path, "first", 2, callbacks=[checkpoint])
    resumed, learner_resumed = _fit(tmp_path, "resumed", 4, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert sorted(resumed) == [2, 3]
    for epoch in range(4):
        part = first if epoch < 2 else resumed
        assert part[epoch] == straight[epoch], epoch  # identical GVM allocations n_i every epoch
    assert len(set(map(tuple, straight.values()))) > 1 and max(max(a) for a in straight.values()) > 4
    assert learner_resumed.budget.state_dict() == learner_straight.budget.state_dict()
    assert learner_resumed.store.state_dict() == learner_straight.store.state_dict()
    a, b = read_scalars(tmp_path / "straight"), read_scalars(tmp_path / "resumed")
    for tag in ("train/loss", "rollout/acceptance_rate", "budget/samples_generated", "val/accuracy", "val/mean@2", "train/kl"):
        late = [(s, v) for s, v in a[tag] if s >= min(step for step, _ in b[tag])]
        assert [s for s, _ in late] == [s for s, _ in b[tag]], tag
        assert [v for _, v in late] == pytest.approx([v for _, v in b[tag]], rel=1e-5, abs=1e-6), tag


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_from_last(tmp_path):
    args = [
        sys.executable, "-u", "-m", "gvmlit", "fit", "--config", "recipes/cpu/raft_uniform.yaml",
        "--trainer.max_epochs=6", "--data.init_args.prompts_per_epoch=16", "--model.init_args.rollout.samples_per_prompt=4",
        "--data.init_args.val_size=64", "--model.init_args.evaluation.samples=2", f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false", "--model.init_args.sampler.init_args.progress=false",
        "--model.init_args.verifier.init_args.progress=false",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "first.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    run = tmp_path / "raft-uniform-seed0" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    while proc.poll() is None:  # no deadline: kill once epoch 1 samples, after the first checkpoint, however slow
        if last.exists() and "epoch 1:" in log_path.read_text():
            break
        time.sleep(0.05)
    assert proc.poll() is None, log_path.read_text()[-2000:]  # still running: killed mid-run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(last, weights_only=True, map_location="cpu")
    assert saved["epoch"] >= 0 and saved["global_step"] > 0
    killed_events = {p: p.read_bytes() for p in run.glob("events.out.tfevents.*")}
    resume = subprocess.run([*args, "--ckpt_path", "last"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert f"Restored all states from the checkpoint at {last}" in resume.stderr + resume.stdout
    # the resumed run continues the killed run's directory; the killed run's event file is untouched
    assert sorted(p.name for p in run.parent.iterdir()) == ["last.ckpt", "version_0"]
    assert all(p.read_bytes() == data for p, data in killed_events.items())
    epochs = [v for _, v in read_scalars(run)["epoch"]]
    assert epochs[-1] == 5.0 and saved["epoch"] + 1 in epochs
    assert torch.load(last, weights_only=True, map_location="cpu")["epoch"] == 5
    assert (run.parent / "last.ckpt").resolve() == last.resolve()


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    from gvmlit.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 1}, target)
    good = target.read_bytes()
    original = torch.save

    def crash_half_way(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash_half_way)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 2}, target)
    monkeypatch.setattr(torch, "save", original)
    assert target.read_bytes() == good and io.load_checkpoint(target)["epoch"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # the partial file went with the error
    assert not (tmp_path / "elsewhere").exists()  # nothing is written outside the checkpoint's directory
    # a writer killed outright (no chance to clean up) leaves its partial file next to the target: the next save removes it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (target.parent / f".last.ckpt.{int(dead.stdout)}.tmp").write_bytes(b"partial")
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 3}, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"] and io.load_checkpoint(target)["epoch"] == 3


def test_a_damaged_checkpoint_is_one_line(tmp_path):
    from test_cli import _cli_error

    from gvmlit.checkpoints import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(1000)}}, target)
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # truncated, as a full disk leaves it
    line = _cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", "--ckpt_path", str(target))
    assert f"checkpoint {target} is damaged or not a checkpoint" in line
    assert f"checkpoint {target} is damaged" in _cli_error("export", str(target), str(tmp_path / "out"))


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
    with pytest.raises(GvmlitError, match=r"ran out of memory generating 3 sequences .* lower model.sampler.init_args.batch_size \(now 4\)"):
        sampler.generate(model, tokenizer, [[5, 6]], [3])


def test_missing_checkpoint_is_one_line(tmp_path):
    from test_cli import _cli_error

    line = _cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", f"--trainer.logger.init_args.save_dir={tmp_path}",
                      "--ckpt_path", "last")  # fmt: skip
    assert f"--ckpt_path last: no run under {tmp_path}/raft-uniform-seed0 saved a checkpoint" in line
    assert "checkpoint file not found" in _cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", "--ckpt_path", str(tmp_path / "x.ckpt"))


def test_overlong_prompts_can_be_skipped_and_are_counted(tmp_path):
    data = RolloutDataModule(
        source=ArithmeticTask(num_train=30, num_val=0, levels=[(2, 1), (5, 2)], seed=1),
        prompts_per_epoch=4, prompt_template="{problem}=", overlong_prompts="skip",
    )  # fmt: skip
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)  # fmt: skip
    learner = RAFT(policy=PretrainedPolicy(SFT), sampler=HFSampler(max_new_tokens=115, progress=False),
                   verifier=ArithmeticVerifier(progress=False), rollout=RolloutSettings(samples_per_prompt=1))  # fmt: skip
    trainer.fit(learner, datamodule=data)
    # 5-term prompts are 15 characters: 15 + 115 > 128, so the 15 of them are skipped, the 2-term ones kept
    assert data.skipped_prompts == 15 and len(data.train_prompts()) == 15


def test_export_of_a_single_file_checkpoint_equals_the_trained_policy(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gvmlit.cli import main

    _, learner = _fit(tmp_path, "export", 1, callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    trained = learner.model.state_dict()
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


def test_export_refuses_a_checkpoint_that_carries_code(tmp_path):
    from test_cli import _cli_error

    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "gvmlit": {"export": {"hook": os.system}}, "note": f"touch {marker}"}, tmp_path / "evil.ckpt")
    line = _cli_error("export", str(tmp_path / "evil.ckpt"), str(tmp_path / "out"))
    assert "refusing to run code from a checkpoint" in line and str(tmp_path / "evil.ckpt") in line
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_export_writes_readable_files_and_says_so_once(tmp_path):
    _, learner = _fit(tmp_path, "export", 1, callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    os.umask(0o022)
    proc = subprocess.run([sys.executable, "-m", "gvmlit", "export", str(tmp_path / "ckpt" / "last.ckpt"), str(tmp_path / "hf")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (proc.stdout + proc.stderr).count("exported") == 1
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "hf").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes
