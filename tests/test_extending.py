"""docs/extending.md's worked example, run as written from a directory outside gvmlit's tree:
a user's own task and verifier for SFT and RAFT, a user's allocator, and an allocator ablation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, read_scalars

BLOCK = re.compile(r"```(?:python|yaml|bash)\n# (\S+)\n(.*?)```", re.DOTALL)
TINY = {  # the page's runs, shortened
    "sft": ["--trainer.max_epochs=2", "--data.init_args.prompts_per_epoch=256", "--data.init_args.val_size=16", "--model.init_args.evaluation.samples=2"],
    "raft": ["--trainer.max_epochs=2", "--data.init_args.prompts_per_epoch=8", "--data.init_args.val_size=16", "--model.init_args.evaluation.samples=2"],
}


def _gvmlit(cwd, *args):
    path = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))  # the user's directory first
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "gvmlit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    page = (ROOT / "docs" / "extending.md").read_text()
    files = dict(BLOCK.findall(page))
    assert {"my_task.py", "sft.yaml", "raft.yaml", "run.sh", "skip_solved.py", "screen.py"} <= set(files)
    assert len(files["my_task.py"].splitlines()) <= 60  # a new task in at most 60 lines
    directory = tmp_path_factory.mktemp("user")
    for name, text in files.items():
        (directory / name).write_text(text)
    quiet = ["--trainer.enable_progress_bar=false", "--model.init_args.verifier.init_args.progress=false"]
    _gvmlit(directory, "fit", "--config", "sft.yaml", *TINY["sft"], *quiet)
    _gvmlit(directory, "fit", "--config", "raft.yaml", *TINY["raft"], *quiet)
    return directory


@pytest.mark.slow
def test_the_users_task_trains_with_sft_and_raft(user_dir):
    assert not str(user_dir).startswith(str(ROOT))
    assert (user_dir / "sub-sft" / "config.json").is_file()  # the SFT export that raft.yaml starts from
    sft = read_scalars(user_dir / "runs" / "sub_sft")
    losses = [v for _, v in sft["train/loss"]]
    assert losses[-1] < 0.9 * losses[0]  # the demonstrations are being learned (16 steps only)
    raft = read_scalars(user_dir / "runs" / "sub_raft")
    assert [v for _, v in raft["budget/samples_generated"]] == [64.0, 128.0]  # 8 prompts × 8 samples per epoch
    assert len(raft["val/accuracy"]) == 3 and "verifier/correct" in raft


@pytest.mark.slow
def test_a_users_allocator_plugs_in_and_logs_its_metric(user_dir):
    _gvmlit(user_dir, "fit", "--config", "raft.yaml", *TINY["raft"], "--model.init_args.allocator=skip_solved.SkipSolved",
            "--trainer.logger.init_args.name=skip", "--trainer.enable_progress_bar=false")  # fmt: skip
    scalars = read_scalars(user_dir / "runs" / "skip")
    assert "allocation/solved" in scalars and [v for _, v in scalars["budget/epoch_samples"]] == [64.0, 64.0]


@pytest.mark.slow
def test_a_users_screening_allocator_chooses_prompts_within_the_budget(user_dir):
    """Candidates, staged pilots and a capped commit, written as a user would, outside the package."""
    _gvmlit(user_dir, "fit", "--config", "raft.yaml", *TINY["raft"], "--model.init_args.allocator=screen.Screen",
            "--trainer.logger.init_args.name=screen", "--trainer.enable_progress_bar=false")  # fmt: skip
    scalars = read_scalars(user_dir / "runs" / "screen")
    epoch_samples = [v for _, v in scalars["budget/epoch_samples"]]
    pilots = [v for _, v in scalars["budget/epoch_pilot_samples"]]
    # 16 candidates × 2 pilots in stage 0, 2 more for each ambiguous one, then the rest of N = 64 to mixed prompts
    assert all(p >= 32 for p in pilots) and all(s <= 64 for s in epoch_samples)
    assert [v for _, v in scalars["allocation/extra_prompts"]] == [8.0, 8.0]  # twice the epoch's 8 prompts screened
    assert "allocation/mixed" in scalars and "allocation/unspent_samples" in scalars


@pytest.mark.slow
def test_an_allocator_ablation_on_the_users_recipe_resumes(user_dir):
    arms = ["--arm", "uniform=gvmlit.allocation.UniformAllocator", "--arm", "gvmpp=gvmlit.allocation.GVMPlusPlusAllocator"]
    common = ["ablate", "--config", "raft.yaml", *arms, "--seeds", "0", "--epochs", "2", "--metric", "val/accuracy",
              "--levels", "0.2", "--out", "ablation"]  # fmt: skip
    _gvmlit(user_dir, *common, "--", *TINY["raft"][1:])
    table = (user_dir / "ablation" / "ablation.md").read_text()
    assert "| uniform | 1 |" in table and "| gvmpp | 1 |" in table
    assert (user_dir / "ablation" / "ablation.png").stat().st_size > 0
    results = json.loads((user_dir / "ablation" / "results.json").read_text())["runs"]
    assert {r["arm"] for r in results} == {"uniform", "gvmpp"}
    gvmpp = next(r for r in results if r["arm"] == "gvmpp")
    assert gvmpp["final"]["allocation/new_prompts"] >= 0 and len(gvmpp["curves"]["samples"]) == 3
    again = _gvmlit(user_dir, *common, "--", *TINY["raft"][1:])  # everything finished: nothing runs again
    assert "seed 0:" not in again.stdout and "| gvmpp | 1 |" in again.stdout
