"""The CPU quickstart recipes, run for real at reduced length: held-out accuracy must rise."""

import pytest

from helpers import QUIET, ROOT, read_scalars, run_cli


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["recipes/cpu/raft_uniform.yaml", "recipes/cpu/raftpp_uniform.yaml"])
def test_quickstart_raises_heldout_accuracy(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_cli(
        "fit", "--config", recipe, "--trainer.max_epochs=5",
        f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}", *QUIET,
    )  # fmt: skip
    scalars = read_scalars(tmp_path)
    greedy = [v for _, v in scalars["val/accuracy"]]
    sampled = [v for _, v in scalars["val/mean@4"]]
    assert len(greedy) == 6  # before training and after each of the 5 epochs
    # π0 (models/arith-sft) solves about half the held-out problems greedily and 38 % of samples
    assert 0.4 < greedy[0] < 0.6 and 0.3 < sampled[0] < 0.45
    assert sampled[-1] >= sampled[0] + 0.06, sampled
    assert max(greedy[1:]) > greedy[0], greedy
    acceptance = [v for _, v in scalars["rollout/acceptance_rate"]]
    assert sum(acceptance[-2:]) / 2 > acceptance[0], acceptance
