"""One run seed derives every other seed (gvmlit.seeding): different seeds move the pool and the order,
never the held-out problems; the same seed reproduces a run exactly."""

import pytest

from gvmlit.cli import GVMLitCLI
from gvmlit.seeding import derive
from helpers import QUIET, ROOT, read_scalars, run_cli

RECIPE = ["--config", "recipes/cpu/grpo_gvmpp.yaml", "--config", "configs/trainer/cpu_debug.yaml"]


def _data(seed, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    cli = GVMLitCLI(args=[*RECIPE, f"--seed_everything={seed}", "--trainer.logger=false"], run=False)
    cli.datamodule.setup("fit")
    return cli


def test_the_run_seed_moves_the_pool_and_the_order_and_nothing_held_out(monkeypatch):
    one, two, again = _data(1, monkeypatch), _data(2, monkeypatch), _data(1, monkeypatch)
    pool = {seed: [r.problem for r in cli.datamodule.source.records("train")] for seed, cli in (("1", one), ("2", two), ("1again", again))}
    assert pool["1"] == pool["1again"] and set(pool["1"]) != set(pool["2"])  # a different training pool per seed
    val = [[r.problem for r in cli.datamodule.source.records("val")] for cli in (one, two)]
    assert val[0] == val[1]  # the held-out problems never move
    assert not set(pool["1"]) & set(val[0]) and not set(pool["2"]) & set(val[0])
    assert one.datamodule.resolved_seed == derive(1, "data.order") != two.datamodule.resolved_seed
    # a component's own seed key stays an explicit override
    monkeypatch.chdir(ROOT)
    fixed = GVMLitCLI(args=[*RECIPE, "--seed_everything=2", "--data.init_args.source.init_args.seed=7", "--trainer.logger=false"], run=False)
    fixed.datamodule.setup("fit")
    assert fixed.datamodule.source.resolved_seed == 7


@pytest.mark.slow
def test_two_seeds_train_on_different_prompts_and_one_seed_twice_gives_identical_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    scalars = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        run_cli("fit", *RECIPE, f"--seed_everything={seed}", f"--trainer.logger.init_args.save_dir={tmp_path / name}", *QUIET)
        scalars[name] = read_scalars(tmp_path / name / f"grpo-gvmpp-seed{seed}")
    timeless = lambda s: {k: v for k, v in s.items() if not (k.startswith("time/") or k.endswith("_seconds"))}  # noqa: E731
    assert timeless(scalars["a"]) == timeless(scalars["b"])  # every logged metric, at every step
    assert timeless(scalars["a"])["rollout/reward"] != timeless(scalars["c"])["rollout/reward"]
