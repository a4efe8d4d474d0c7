"""The gvmlit CLI: recipes parse, one key swaps a component, errors are one line."""

import tempfile

import pytest
import yaml

from helpers import QUIET, ROOT, cli_error, read_histogram_tags, read_scalars, run_cli

RECIPES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "recipes").rglob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_parses(recipe, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        run_cli("fit", "--config", recipe, "--print_config")
    assert exit_info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"].startswith("gvmlit.algorithms.")
    assert config["trainer"]["reload_dataloaders_every_n_epochs"] == 0  # nothing but the learner's own hook renews the data


def test_one_key_swaps_the_algorithm_variant_and_logs_to_tensorboard(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_cli(
        "fit", "--config", "recipes/cpu/raft_uniform.yaml", "--config", "configs/trainer/cpu_debug.yaml",
        f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
        "--model.init_args.variant=raft++", *QUIET,
    )  # fmt: skip
    scalars = read_scalars(tmp_path)
    # RAFT++ only: the importance-ratio diagnostics and the sampler/trainer log-prob check
    assert "train/clip_fraction" in scalars and "train/ratio" in scalars
    assert scalars["rollout/sampler_trainer_logprob_diff"][-1][1] < 1e-3
    for tag in ("train/loss", "rollout/acceptance_rate", "rollout/reward", "budget/samples_generated",
                "budget/tokens_generated", "val/accuracy", "val/mean@1"):  # fmt: skip
        assert tag in scalars, tag
    # cumulative counters: 2 epochs × 8 prompts × 2 samples
    assert [v for _, v in scalars["budget/samples_generated"]] == [16.0, 32.0]
    assert len(scalars["val/accuracy"]) == 3  # the start, then after each epoch
    hist = read_histogram_tags(tmp_path)
    assert "rollout/acceptance_rate_per_prompt" in hist and "rollout/samples_per_prompt" in hist
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    assert saved["model"]["init_args"]["variant"] == "raft++"


def _cli_error(*args: str) -> str:
    """The one ``gvmlit: error:`` line a bad command prints (run in this process: it is the parse or the
    first step that fails; a traceback would fail the test)."""
    if args[0] not in ("export", "ablate") and not any("save_dir" in a for a in args):
        scratch = tempfile.mkdtemp(prefix="gvmlit-cli-")  # write nothing into the repository
        args = (*args, "--trainer.logger=false", "--trainer.enable_checkpointing=false", f"--trainer.default_root_dir={scratch}")
    return cli_error(*args)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--model.init_args.allocator=gvmlit.allocation.NoSuchAllocator", "unknown class_path 'gvmlit.allocation.NoSuchAllocator' for 'model.allocator'"),
        ("--model.init_args.learning_rate=0.1", "unknown key 'learning_rate' under 'model'"),
        ("--trainer.max_epoch=3", "unrecognized arguments: --trainer.max_epoch=3"),
        ("--model.init_args.variant=raft3", "'model.variant' must be one of 'raft', 'raft++'; got 'raft3'"),
        ("--model.init_args.allocator=gvmlit.sampling.HFSampler", "'model.allocator' must be a BudgetAllocator"),
        ("--model.init_args.sampler.init_args.max_new_tokens=200", "exceeds the model's maximum length 128"),
    ],
)
def test_bad_config_gives_one_line_error(override, expected):
    line = _cli_error("fit", "--config", "recipes/cpu/raft_uniform.yaml", override, "--trainer.enable_progress_bar=false")
    assert expected in line


def test_dataset_row_without_answer_names_file_and_row(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2", "solution": "4"}\n')
    line = _cli_error(
        "fit", "--config", "recipes/cpu/raft_uniform.yaml",
        "--data.init_args.source=gvmlit.data.JsonlPrompts", f"--data.init_args.source.init_args.train_file={bad}",
        "--trainer.enable_progress_bar=false",
    )  # fmt: skip
    assert f"{bad}:2: row has no 'answer'" in line


@pytest.mark.parametrize("preset", sorted((ROOT / "configs" / "allocator").glob("*.yaml")), ids=lambda p: p.name)
def test_allocator_presets_are_the_class_defaults(preset):
    """A recipe outside this repository names an allocator by class alone; its defaults must then be
    the preset in configs/allocator/."""
    import importlib
    import inspect

    config = yaml.safe_load(preset.read_text())
    module, _, name = config["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    defaults = {k: v.default for k, v in inspect.signature(cls.__init__).parameters.items() if v.default is not inspect.Parameter.empty}
    for key, value in (config.get("init_args") or {}).items():
        assert defaults.get(key) == value, f"{preset.name}: {key}={value!r} but {name} defaults to {defaults.get(key)!r}"


@pytest.mark.parametrize("config", [["--config", "recipes/cpu/grpo_gvm.yaml"], ["--config=recipes/cpu/grpo_gvm.yaml"]])
def test_help_with_a_recipe_lists_every_components_keys(capsys, monkeypatch, config):
    monkeypatch.chdir(ROOT)
    run_cli("fit", *config, "--help")
    out = capsys.readouterr().out
    for key in ("--trainer.max_epochs", "--model.optim.lr", "--model.rollout.samples_per_prompt", "--allocator.pilot_samples",
                "--sampler.max_new_tokens", "--data.prompts_per_epoch", "--source.num_train"):  # fmt: skip
        assert key in out, key
    assert "=== model.init_args.allocator: gvmlit.allocation.GVMAllocator" in out
