"""What a new user meets: bad input and faults give one line and lose nothing; runs never end silently.

Each test runs the real CLI on the quickstart recipe at debug size, in this process or (where the
fault is a process-level one) in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import QUIET, ROOT, cli_error, read_scalars, run_cli

RECIPE = ["--config", "recipes/cpu/raft_uniform.yaml", "--config", "configs/trainer/cpu_debug.yaml"]

# A user's own verifiers, in a module of their own (imported by the verifier's worker processes too).
USER_VERIFIERS = '''
import time

from gvmlit.records import Verdict
from gvmlit.verifiers import Verifier


class Hangs(Verifier):
    """Never returns (a sympy call that never ends, a network call without a timeout …)."""

    def score_one(self, response, record):
        while True:
            time.sleep(1)


class Crashes(Verifier):
    def score_one(self, response, record):
        raise ValueError("cannot parse the gold answer " + repr(record.answer))


class StringReward(Verifier):
    """Returns its reward as text (evaluation would take it; training would crash comparing it)."""

    def score_one(self, response, record):
        return Verdict("1.0", "correct")
'''


def _fit(tmp_path, *overrides):
    run_cli("fit", *RECIPE, f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET, *overrides)
    return read_scalars(tmp_path / "raft-uniform-seed0")


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_an_invalid_budget_is_refused_when_parsed(value):
    line = cli_error("fit", *RECIPE, f"--model.init_args.rollout.samples_per_prompt={value}", "--trainer.logger=false")
    assert "'model.rollout.samples_per_prompt' must be an integer > 0; got" in line and value.lstrip("-") in line


def test_an_epoch_with_nothing_accepted_is_logged_and_skipped_and_the_run_goes_on(tmp_path, caplog):
    hopeless = tmp_path / "hopeless.jsonl"  # every reference answer is wrong: nothing can be accepted
    hopeless.write_text("".join(json.dumps({"problem": f"{i}+{i}", "answer": "-1"}) + "\n" for i in range(40)))
    scalars = _fit(
        tmp_path, "--data.init_args.source=gvmlit.data.JsonlPrompts", f"--data.init_args.source.init_args.train_file={hopeless}",
        "--data.init_args.eval_source=gvmlit.data.ArithmeticTask",
    )  # fmt: skip
    assert [v for _, v in scalars["rollout/skipped_update"]] == [1.0, 1.0]  # both epochs: no update
    assert [v for _, v in scalars["budget/samples_generated"]] == [16.0, 32.0]  # but they did sample again
    assert len(scalars["val/accuracy"]) == 3 and "train/loss" not in scalars  # evaluated every epoch, never trained
    assert "nothing to train on: this epoch's update is skipped" in caplog.text


@pytest.mark.parametrize(
    ("verifier", "expected"),
    [
        # a hanging check stops after 3 timeouts in a row, not after all 8 of the first evaluation pass
        ("Hangs", "Hangs: 3 answers in a row ran past timeout_seconds=1; the verifier seems to hang — stopping instead of waiting that long for each of the 5 left"),
        ("Crashes", "Crashes failed on 8 of 8 eval answers (8 error); last error: Crashes.score_one: ValueError(\"cannot parse the gold answer"),
        ("StringReward", "StringReward failed on 8 of 8 eval answers (8 error); last error: StringReward.score_one returned Verdict(reward='1.0'"),
    ],
)
def test_a_users_verifier_that_hangs_crashes_or_misbehaves_stops_the_run_in_one_line(tmp_path, verifier, expected):
    (tmp_path / "user_verifiers.py").write_text(USER_VERIFIERS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "gvmlit", "fit", *RECIPE, f"--model.init_args.verifier=user_verifiers.{verifier}",
         "--model.init_args.verifier.init_args.timeout_seconds=1", "--model.init_args.rollout.max_consecutive_timeouts=3",
         f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", "--trainer.enable_progress_bar=false"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("gvmlit: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert expected in errors[0], errors[0]
    assert not (tmp_path / "runs" / "raft-uniform-seed0").exists() or not any((tmp_path / "runs" / "raft-uniform-seed0").iterdir())


def test_two_runs_of_a_recipe_have_their_own_directories_and_last_means_the_last_one(tmp_path):
    args = ["--trainer.enable_checkpointing=true", "--trainer.max_epochs=1"]
    _fit(tmp_path, *args)
    _fit(tmp_path, *args)
    root = tmp_path / "raft-uniform-seed0"
    assert sorted(p.name for p in root.iterdir()) == ["last.ckpt", "version_0", "version_1"]
    assert (root / "version_0" / "checkpoints" / "last.ckpt").is_file() and (root / "version_1" / "checkpoints" / "last.ckpt").is_file()
    assert (root / "last.ckpt").resolve() == (root / "version_1" / "checkpoints" / "last.ckpt").resolve()
    assert not list(root.rglob("last-v*.ckpt")) and not list(root.rglob("epoch=*.ckpt"))
    _fit(tmp_path, "--trainer.enable_checkpointing=true", "--trainer.max_epochs=2", "--ckpt_path", "last")
    assert sorted(p.name for p in root.iterdir()) == ["last.ckpt", "version_0", "version_1"]  # no version_2
    assert sorted({v for _, v in read_scalars(root / "version_1")["epoch"]}) == [0.0, 1.0]  # the same run, continued


def test_a_failed_run_leaves_no_empty_run_directory(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"problem": "1+1", "answer": "2"}\n{"problem": "caf\xe9", "answer": "3"}\n')
    line = cli_error("fit", *RECIPE, "--data.init_args.source=gvmlit.data.JsonlPrompts",
                     f"--data.init_args.source.init_args.train_file={bad}", f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}")  # fmt: skip
    assert f"{bad}:2: not UTF-8 text" in line
    assert not (tmp_path / "runs" / "raft-uniform-seed0").exists() or not any((tmp_path / "runs" / "raft-uniform-seed0").iterdir())


def test_an_unwritable_log_directory_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    line = cli_error("fit", *RECIPE, f"--trainer.logger.init_args.save_dir={tmp_path / 'a_file' / 'runs'}")
    assert "cannot write" in line and "a_file" in line and "Not a directory" in line


def test_malformed_yaml_names_the_file_and_the_line(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("model:\n  init_args:\n    optim: [1,\n  rollout: 4\n")
    assert cli_error("fit", "--config", str(recipe)).startswith(f"gvmlit: error: {recipe}:5:1: not valid YAML")


def test_a_mistyped_local_model_path_fails_at_once_without_the_hub(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}  # as a user would run it
    proc = subprocess.run(
        [sys.executable, "-m", "gvmlit", "fit", *RECIPE, "--model.init_args.policy.init_args.name_or_path=models/arith-sfx",
         f"--trainer.logger.init_args.save_dir={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "no directory 'models/arith-sfx'" in proc.stderr
    assert "Retrying" not in proc.stderr and "huggingface.co" not in proc.stderr


def test_a_gpu_recipe_on_a_machine_without_a_gpu_says_how_to_try_it_on_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = cli_error("fit", "--config", "recipes/grpo_gvm.yaml", "--trainer.logger=false")
    assert "this machine has no CUDA GPU" in line and "--config configs/trainer/cpu_tiny.yaml" in line


@pytest.mark.slow
def test_the_gpu_recipe_runs_on_cpu_with_the_tiny_overlay(tmp_path):
    run_cli("fit", "--config", "recipes/grpo_gvm.yaml", "--config", "configs/trainer/cpu_tiny.yaml", "--trainer.max_epochs=1",
            f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET)  # fmt: skip
    scalars = read_scalars(tmp_path / "grpo-gvm-seed42")  # the paper recipe's seed
    # GVM's 8 pilots per prompt on top of 2 samples per prompt, 8 prompts, all counted
    assert [v for _, v in scalars["budget/samples_generated"]] == [8 * (8 + 2.0)]
    assert "val/math500/accuracy" in scalars or "val/accuracy" in scalars


def test_the_run_says_what_it_is_doing_and_nothing_else(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    fit = subprocess.run([sys.executable, "-m", "gvmlit", "fit", *RECIPE, "--model.init_args.allocator=configs/allocator/gvm.yaml",
                          "--trainer.enable_checkpointing=true", f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET],
                         cwd=ROOT, capture_output=True, text=True, env=env)  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-2000:]
    text = fit.stdout + fit.stderr
    assert "💡" not in text and "deprecated" not in text.lower()
    assert text.index("validation at step 0") < text.index("epoch 0:")  # π0 is evaluated before the first rollout
    assert "epoch 0: 8 prompts, 80 samples (budget 16 + 64 pilots)" in text  # GVM's pilots come on top, said so
    # the run is named after what ran: the allocator swapped on the command line, not the recipe's
    assert f"checkpoint: {tmp_path}/raft-gvm-seed0/version_0/checkpoints/last.ckpt" in text
    assert f"logs: {tmp_path}/raft-gvm-seed0/version_0" in text
    test = subprocess.run([sys.executable, "-m", "gvmlit", "test", *RECIPE, "--model.init_args.allocator=configs/allocator/gvm.yaml",
                           f"--trainer.logger.init_args.save_dir={tmp_path}",
                           "--ckpt_path", "last", *QUIET], cwd=ROOT, capture_output=True, text=True, env=env)  # fmt: skip
    assert test.returncode == 0, test.stderr[-2000:]
    assert "test at step 2 (160 samples generated)" in test.stderr + test.stdout  # the checkpoint's step, not 0
