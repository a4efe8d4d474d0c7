"""What a run does when something goes wrong or changes under it, through the real CLI and real processes:
resuming checks what it resumes, two runs started together get two directories, SIGTERM and Ctrl-C stop
mid-rollout with a resumable run and the right exit code, export refuses to overwrite."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from gvmlit.records import Verdict
from gvmlit.verifiers import ArithmeticVerifier
from helpers import QUIET, ROOT, cli_error, read_scalars, run_cli

DEBUG = ["--config", "configs/trainer/cpu_debug.yaml", "--trainer.max_epochs=1"]


def _fit(tmp_path, recipe, *overrides):
    run_cli("fit", "--config", recipe, *DEBUG, f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET, *overrides)


def test_resume_refuses_another_learner_and_unasked_changes_and_applies_asked_ones(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(ROOT)
    _fit(tmp_path, "recipes/cpu/grpo_uniform.yaml", "--model.init_args.optim.lr=3e-5")
    grpo = tmp_path / "grpo-uniform-seed0" / "version_0" / "checkpoints" / "last.ckpt"
    line = cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", *DEBUG, f"--trainer.logger.init_args.save_dir={tmp_path}",
                     "--ckpt_path", str(grpo), *QUIET)  # fmt: skip
    assert "the checkpoint was written by gvmlit.algorithms.grpo.GRPO, but this run trains gvmlit.algorithms.raft.RAFT" in line
    changed = ["--model.init_args.optim.lr=1e-2", "--model.init_args.loss.clip_high=0.4", "--trainer.max_epochs=2"]  # max_epochs: free
    line = cli_error("fit", "--config", "recipes/cpu/grpo_uniform.yaml", *DEBUG, f"--trainer.logger.init_args.save_dir={tmp_path}",
                     *changed, "--ckpt_path", "last", *QUIET)  # fmt: skip
    assert "resuming with settings that differ from the run's: model.loss.clip_high: 0.28 → 0.4; model.optim.lr: 3e-05 → 0.01" in line
    assert "--resume_with_changes true" in line and "max_epochs" not in line
    original = (tmp_path / "grpo-uniform-seed0" / "version_0" / "config.yaml").read_text()
    _fit(tmp_path, "recipes/cpu/grpo_uniform.yaml", *changed, "--resume_with_changes=true", "--ckpt_path", "last")
    run = tmp_path / "grpo-uniform-seed0" / "version_0"
    assert (run / "config.yaml").read_text() == original  # the run's own record is never rewritten
    resumed = yaml.safe_load((run / "config-resume-1.yaml").read_text())
    assert resumed["model"]["init_args"]["optim"]["lr"] == 0.01 and resumed["ckpt_path"].endswith("last.ckpt")
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 1 and {g["lr"] for g in saved["optimizer_states"][0]["param_groups"]} == {0.01}  # applied, not the old 3e-5
    assert saved["gvmlit"]["produced_by"]["model"]["optim"]["lr"] == 0.01


def test_a_checkpoint_without_a_record_resumes_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(ROOT)
    _fit(tmp_path, "recipes/cpu/raft_uniform.yaml")
    path = tmp_path / "raft-uniform-seed0" / "version_0" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["gvmlit"]["produced_by"]  # as an older gvmlit wrote it
    torch.save(checkpoint, path)
    _fit(tmp_path, "recipes/cpu/raft_uniform.yaml", "--trainer.max_epochs=2", "--ckpt_path", "last")
    assert "cannot be checked" in caplog.text


def test_resuming_a_finished_run_says_so_and_auto_starts_a_new_one(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(ROOT)
    _fit(tmp_path, "recipes/cpu/raft_uniform.yaml")
    line = cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", *DEBUG, f"--trainer.logger.init_args.save_dir={tmp_path}",
                     "--ckpt_path", "last", *QUIET)  # fmt: skip
    assert "already finished its 1 epochs; raise --trainer.max_epochs" in line
    _fit(tmp_path, "recipes/cpu/raft_uniform.yaml", "--ckpt_path", "auto")
    assert sorted(p.name for p in (tmp_path / "raft-uniform-seed0").glob("version_*")) == ["version_0", "version_1"]


def _gvmlit(*args, cwd=ROOT, **kwargs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "gvmlit", *args], cwd=cwd, env=env, **kwargs)


@pytest.mark.slow
def test_two_runs_started_together_get_two_complete_directories(tmp_path):
    args = ["fit", "--config", "recipes/cpu/raft_uniform.yaml", *DEBUG, f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET]
    runs = [_gvmlit(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate()
        assert run.returncode == 0, err[-2000:]
    root = tmp_path / "raft-uniform-seed0"
    assert sorted(p.name for p in root.glob("version_*")) == ["version_0", "version_1"]
    for version in ("version_0", "version_1"):
        assert (root / version / "checkpoints" / "last.ckpt").is_file() and (root / version / "config.yaml").is_file()
        assert len(list((root / version).glob("events.out.tfevents.*"))) == 1  # one run's events per directory
        assert read_scalars(root / version)["budget/samples_generated"] == [(1, 16.0)] or read_scalars(root / version)["budget/samples_generated"][-1][1] == 16.0


class SlowVerifier(ArithmeticVerifier):
    """Scores in this process, slowly, and notes whether a stop had been asked for when each answer began
    (the verifier must not start another answer after that)."""

    def score_one(self, response, record):
        from gvmlit import stopping

        with open(os.environ["GVMLIT_TEST_NOTES"], "a") as notes:
            notes.write(f"{int(stopping.requested())}\n")
        time.sleep(0.02)
        return super().score_one(response, record)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_rollout_stops_at_the_next_answer_and_the_run_resumes(tmp_path, signum, code):
    notes = tmp_path / "notes.txt"
    args = ["fit", "--config", "recipes/cpu/raft_uniform.yaml", "--trainer.max_epochs=2", "--data.init_args.prompts_per_epoch=16",
            "--model.init_args.rollout.samples_per_prompt=4", "--data.init_args.val_size=8", "--model.init_args.evaluation.samples=1",
            "--model.init_args.verifier=test_reliability.SlowVerifier", "--model.init_args.verifier.init_args.workers=0",
            f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET]  # fmt: skip
    os.environ["GVMLIT_TEST_NOTES"] = str(notes)
    log = (tmp_path / "log.txt").open("w")
    run = _gvmlit(*args, stdout=log, stderr=subprocess.STDOUT)
    checkpoint = tmp_path / "raft-uniform-seed0" / "version_0" / "checkpoints" / "last.ckpt"
    while run.poll() is None and not (checkpoint.exists() and notes.exists() and len(notes.read_text().split()) > 8 + 16 * 4 + 8 + 5):
        time.sleep(0.05)  # no deadline: wait for epoch 1's verification to have started, however slow the machine
    assert run.poll() is None, (tmp_path / "log.txt").read_text()[-2000:]
    run.send_signal(signum)
    assert run.wait() == code
    text = (tmp_path / "log.txt").read_text()
    assert "epoch 1:" not in text  # stopped inside epoch 1's rollout
    assert f"gvmlit: stopped by {signal.Signals(signum).name} while train: sampling and verifying" in text
    assert f"the run's last checkpoint is {checkpoint}" in text and "resume with: gvmlit fit" in text and "--ckpt_path last" in text
    flags = notes.read_text().split()
    assert flags.count("1") <= 1  # at most the answer already begun when the signal came
    assert json.loads((checkpoint.parent.parent / "interrupted.json").read_text())["checkpoint"] == str(checkpoint)
    resume = _gvmlit(*args, "--ckpt_path", "last", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = resume.communicate()
    assert resume.returncode == 0, out[-2000:]
    assert "epoch 1:" in out and torch.load(checkpoint, weights_only=True)["epoch"] == 1


def test_export_refuses_a_directory_that_holds_files(tmp_path, monkeypatch):
    from test_cli import _cli_error

    monkeypatch.chdir(ROOT)
    _fit(tmp_path, "recipes/cpu/raft_uniform.yaml")
    checkpoint = tmp_path / "raft-uniform-seed0" / "last.ckpt"
    target = tmp_path / "mine"
    target.mkdir()
    (target / "config.json").write_text("{\"mine\": true}")
    line = _cli_error("export", str(checkpoint), str(target))
    assert f"export: {target} already holds config.json; choose an empty or new directory, or add --overwrite" in line
    assert json.loads((target / "config.json").read_text()) == {"mine": True}
    run_cli("export", str(checkpoint), str(target), "--overwrite")
    assert json.loads((target / "config.json").read_text())["model_type"] == "llama"


class StringReward(ArithmeticVerifier):
    def score_one(self, response, record):
        return Verdict("1.0", "correct")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--trainer.max_epochs=-1"], "trainer.max_epochs is -1: the run never ends by itself (16 samples an epoch)"),
        (["--model.init_args.rollout.samples_per_prompt=100000"], "800000 samples an epoch (8 prompts × 100000)"),
    ],
    ids=["endless", "huge"],
)
def test_a_run_likely_to_be_a_mistake_is_said_so_with_its_numbers(args, expected, tmp_path, monkeypatch, caplog):
    from gvmlit.cli import GVMLitCLI, warn_about_the_run_length

    monkeypatch.chdir(ROOT)
    cli = GVMLitCLI(args=["--config", "recipes/cpu/raft_uniform.yaml", *DEBUG, *args, "--trainer.logger=false"], run=False)
    warn_about_the_run_length(cli.trainer, cli.model, cli.datamodule)
    assert expected in caplog.text


def test_small_things_get_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    line = cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", "--model.init_args.allocator=configs/allocator/nope.yaml", "--trainer.logger=false")
    assert "file 'configs/allocator/nope.yaml' not found (for 'model.allocator'" in line
    long_prompt = "1+" * 10_000 + "x"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": long_prompt, "answer": "1"}) + "\n" + json.dumps({"problem": "1+1", "answer": "2"}) + "\n")
    line = cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", *DEBUG, "--data.init_args.source=gvmlit.data.JsonlPrompts",
                     f"--data.init_args.source.init_args.train_file={bad}", "--data.init_args.prompts_per_epoch=1",
                     "--data.init_args.eval_source=gvmlit.data.ArithmeticTask", f"--trainer.logger.init_args.save_dir={tmp_path}")  # fmt: skip
    assert "has characters the tokenizer does not know" in line and "'x' in" in line and "(20002 characters)" in line and len(line) < 400
    assert not (tmp_path / "raft-uniform-seed0").exists()  # a failed run leaves no empty directory behind


def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    """/sys refuses new entries to everyone, root included ('Operation not permitted'), as a read-only
    mount or a directory of someone else's would."""
    from test_cli import _cli_error

    monkeypatch.chdir(ROOT)
    line = cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", *DEBUG, "--trainer.logger.init_args.save_dir=/sys/gvmlit-runs", *QUIET)
    assert line.startswith("gvmlit: error: cannot write /sys/gvmlit-runs") and "trainer.logger.init_args.save_dir" in line
    _fit(tmp_path, "recipes/cpu/raft_uniform.yaml")
    line = _cli_error("export", str(tmp_path / "raft-uniform-seed0" / "last.ckpt"), "/sys/gvmlit-export")
    assert line.startswith("gvmlit: error: export: cannot write /sys/gvmlit-export") and "OUTPUT_DIR" in line and "trainer" not in line
