"""``gvmlit fit|validate|test --config RECIPE``: LightningCLI over the RL modules and the rollout data.

Components are chosen in YAML by ``class_path`` / ``init_args`` (their constructor arguments are the
keys, documented in ``--help``); any key can be overridden on the command line
(``--model.init_args.lr=1e-4``, ``--model.init_args.allocator=gvmlit.allocation.GVMAllocator``).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from jsonargparse import ActionConfigFile
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from gvmlit.algorithms.base import PolicyModule
from gvmlit.algorithms.settings import MOVED_KEYS
from gvmlit.checkpoints import check_checkpoint_file, init_argument_names, run_to_resume, version_of
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.errors import GvmlitError
from gvmlit.progress import launcher_rank
from gvmlit.stopping import Interrupted

SUBCOMMANDS = ("fit", "validate", "test")
log = logging.getLogger("gvmlit")

#: run directories this process created (a failed run that logged nothing leaves none behind)
NEW_RUN_DIRS: list[Path] = []

#: keys that sat under ``data`` before the learner owned the rollout parts
MOVED_TO_MODEL = ("sampler", "verifier", "allocator", "eval_sampler", "samples_per_prompt", "acceptance_threshold", "val_samples", "eval_ks")


def moved_key_hint(section: str, key: str) -> str | None:
    """Where a key of an older recipe lives now (``model.lr`` → ``model.init_args.optim.lr``), or None."""
    if section == "data" and key in MOVED_TO_MODEL:
        target = MOVED_KEYS.get(key, key)
        return f"'data.{key}' has moved: the learner owns it now — write it under model.init_args.{target} (see README)"
    if section == "model" and key in MOVED_KEYS:
        return f"'model.{key}' has moved into a settings group: write it as model.init_args.{MOVED_KEYS[key]} (see README)"
    return None


#: lines of jsonargparse's union reports that only describe the report's structure
_STRUCTURE = re.compile(
    r"^(Parser key .*|Problem with given class_path .*|Does not validate against any of the Union subtypes|Subtypes: .*|Errors:"
    r"|Given value type: .*|Given value: .*|Expected a <class 'NoneType'>|Expected a path but .* either not accessible or invalid)$"
)


def summarize_config_error(message: str) -> str:
    """Turn jsonargparse's nested union report into one line naming the key, the problem and the value."""
    path = ".".join(re.findall(r'Parser key "([^"]+)"', message))
    classes = re.findall(r"Problem with given class_path '([^']+)'", message)
    lines = [line.strip().lstrip("-").strip() for line in message.splitlines()]
    reasons = [line for line in lines if line and not _STRUCTURE.match(line)]
    reason = reasons[-1] if reasons else (lines[0] if lines else message)
    if m := re.search(r"Option '([^']+)' is not accepted", message):
        if hint := moved_key_hint(path.split(".")[0], m.group(1)):
            return hint
        owner = classes[-1] if classes else path
        allowed = _init_arguments(owner)
        hint = f"; accepted: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {m.group(1)!r} under '{path}' ({owner}){hint}"
    if m := re.search(r"Unexpected import path format: (\S+\.ya?ml)\b", message):
        return f"file {m.group(1)!r} not found (for '{path}': a component's config file, read relative to the file that names it)"
    if m := re.search(r"module '([^']+)' has no attribute '([^']+)'", reason):
        return f"unknown class_path '{m.group(1)}.{m.group(2)}' for '{path}': {m.group(1)} has no {m.group(2)!r}"
    if m := re.search(r"No module named '([^']+)'", reason):
        return f"unknown class_path for '{path}': no module named {m.group(1)!r}"
    if m := re.search(r"Import path does not correspond to a subclass of (\w+)", message):
        given = re.findall(r"Given value: (?:NestedArg\(key='[^']*', val=')?([^'\n)]+)", message)
        return f"'{path}' must be a {m.group(1)}, but {given[-1] if given else 'the given class'} is not one"
    if m := re.search(r"File does not exist: '([^']+)'", message):
        return f"file {m.group(1)!r} does not exist (from '{path or 'config'}')"
    if m := re.search(r"Expected a typing.Literal\[(.*?)\]\. Got value: (.*)", reason):
        return f"'{path}' must be one of {m.group(1)}; got {m.group(2).strip()!r}"
    if m := re.match(r"Expected a <class '(\w+)'>\. Got value: (.*)", reason):
        return f"'{path}' must be {_a_type(m.group(1))}; got {m.group(2).strip()!r}"
    if m := re.match(r"Not of type (\w+): (.*)", reason):
        got = re.search(r"(?:with base \d+: (.*)|^(\S+) does not conform)", m.group(2))
        value = f"; got {(got.group(1) or got.group(2)).strip()}" if got else f" ({m.group(2)})"
        return f"'{path}' must be {_a_type(m.group(1))}{value}"
    if classes and path:
        return f"'{path}' ({classes[-1]}): {reason}"
    return f"{path}: {reason}" if path and not reason.startswith(path) else reason


def _a_type(name: str) -> str:
    """'an integer > 0' for PositiveInt …: how a type reads in an error message."""
    described = {
        "int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
        "PositiveInt": "an integer > 0", "NonNegativeInt": "an integer ≥ 0", "PositiveFloat": "a number > 0",
        "NonNegativeFloat": "a number ≥ 0", "ClosedUnitInterval": "a number in [0, 1]", "OpenUnitInterval": "a number in (0, 1)",
    }  # fmt: skip
    return described.get(name, f"a {name}")


def _init_arguments(class_path: str) -> list[str]:
    """The constructor arguments of a class named by its import path ([] if it cannot be imported)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    return init_argument_names(cls)


class GVMLitArgumentParser(LightningArgumentParser):
    """Reports configuration errors in one line (``gvmlit: error: …``) instead of the usage dump."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        print(f"gvmlit: error: {summarize_config_error(message)} (see --help)", file=sys.stderr)
        sys.exit(2)


class GVMLitCLI(LightningCLI):
    """LightningCLI with gvmlit's defaults: a rollout dataset rebuilt every epoch, omegaconf ``${}``."""

    def __init__(self, args=None, run: bool = True) -> None:
        args = expand_recipes(list(sys.argv[1:] if args is None else args))  # recipes built from parts (``base:``)
        epilog = (
            "--model.KEY is short for --model.init_args.KEY (the same for data and every component). "
            "Each component's own keys: with a recipe, gvmlit fit --config RECIPE --help lists them after this; "
            "or ask for one class: --model.help gvmlit.algorithms.GRPO, --data.help gvmlit.data.RolloutDataModule, "
            "--model.init_args.allocator.help gvmlit.allocation.GVMPlusPlusAllocator, "
            "--model.init_args.sampler.help gvmlit.sampling.HFSampler, --model.init_args.verifier.help gvmlit.verifiers.MathVerifier."
        )
        parser_kwargs: dict = {name: {"parser_mode": "omegaconf", "epilog": epilog} for name in SUBCOMMANDS}
        parser_kwargs["description"] = (
            "Train and evaluate reasoners with RAFT, RAFT++ or GRPO and per-prompt budget allocation. "
            "Subcommands: fit | validate | test --config RECIPE (see `gvmlit fit --help` for every key); "
            "export CHECKPOINT OUTPUT_DIR writes a checkpoint's policy as a Hugging Face model directory; "
            "ablate --config RECIPE --arm NAME=ALLOCATOR … runs an allocator ablation (gvmlit ablate --help)."
        )
        super().__init__(
            model_class=PolicyModule,
            datamodule_class=RolloutDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults={  # conveniences only: a plain Trainer trains the same (tests/algorithms/test_python_api.py)
                "num_sanity_val_steps": 0,  # the module evaluates the starting policy itself (it skips the sanity check)
                "log_every_n_steps": 1,
            },
            save_config_kwargs={"overwrite": True},
            parser_kwargs=parser_kwargs,
            args=args,
            run=run,
        )

    def init_parser(self, **kwargs) -> LightningArgumentParser:
        kwargs.setdefault("dump_header", ["gvmlit"])
        kwargs.setdefault("allow_abbrev", False)  # a misspelt key must fail, not match a longer one
        parser = GVMLitArgumentParser(**kwargs)
        parser.add_argument("-c", "--config", action=ActionConfigFile, help="Path to a YAML recipe; later files win.")
        parser.add_argument(
            "--base", type=list[str] | str | None, default=None,
            help="In a recipe: the files it is built from (relative to it), read before it; gvmlit expands them into --config files.",
        )  # fmt: skip
        parser.add_argument(
            "--resume_with_changes", type=bool, default=False,
            help="With --ckpt_path: continue the run although settings differ from those it was started with (listed when "
            "refused); they take effect from the next step. Run-length, evaluation and logging keys may always change.",
        )  # fmt: skip
        return parser

    def before_instantiate_classes(self) -> None:
        """The saved config.yaml is the fully resolved run: it needs no parts (and its directory has none)."""
        if self.subcommand:
            self.config[self.subcommand]["base"] = None

    def _instantiate_trainer(self, config: dict, callbacks: list):
        """Each run checkpoints into its own ``<save_dir>/<name>/version_N/checkpoints`` (``last.ckpt``
        every epoch, nothing else), and ``--ckpt_path last`` resumes the last run that saved one, logging
        into that run's directory again (gvmlit.checkpoints). Unless the recipe names the run, its name says
        what runs (``grpo-gvmpp-seed0``: algorithm, allocator, seed), and a new run claims its ``version_N``
        atomically, so that runs started together never share a directory."""
        logger = config.get("logger")
        if isinstance(logger, TensorBoardLogger) and self.subcommand:
            if logger._name in ("", "lightning_logs", "auto"):
                logger._name = run_name(self.model, self.config[self.subcommand].get("seed_everything"))
            self._resume_into_its_run(logger)
            if logger._version is None and launcher_rank() == "0":
                logger._version = claim_version(Path(logger.root_dir))
                NEW_RUN_DIRS.append(Path(logger.log_dir))  # removed again if the run fails before logging anything
        configured = list(callbacks) + list(config.get("callbacks") or [])
        if config.get("enable_checkpointing", True) is not False and not any(isinstance(c, ModelCheckpoint) for c in configured):
            dirpath = Path(logger.log_dir) / "checkpoints" if isinstance(logger, TensorBoardLogger) else None
            # one file, last.ckpt, rewritten (atomically) every epoch: the run's latest state and nothing else
            callbacks = [*callbacks, ModelCheckpoint(dirpath=dirpath, filename="last", save_top_k=1, enable_version_counter=False)]
        return super()._instantiate_trainer(config, callbacks)

    def _resume_into_its_run(self, logger: TensorBoardLogger) -> None:
        """``--ckpt_path last``: the newest run of this name that saved a checkpoint; ``auto`` (for schedulers
        that requeue a job): that run if it did not finish, else a new run. The resumed run logs into its own
        directory again and writes its configuration next to the original's (``config-resume-N.yaml``)."""
        ckpt = self.config[self.subcommand].get("ckpt_path")
        root = Path(logger.root_dir)
        if ckpt in ("last", "auto"):
            found = run_to_resume(root)
            finished = found is not None and (found.parent.parent / FINISHED).is_file()
            if ckpt == "auto" and (found is None or finished):
                log.info("--ckpt_path auto: %s; starting a new run", "no earlier run saved a checkpoint" if found is None else f"the last run ({found.parent.parent}) finished")
                ckpt = None
            elif found is None:
                raise GvmlitError(f"--ckpt_path last: no run under {root} saved a checkpoint (version_*/checkpoints/last.ckpt); nothing to resume")
            else:
                ckpt = str(found)
                if self.subcommand == "fit":  # testing or validating a finished run is what it is for
                    self._refuse_finished(found.parent.parent)
            self.config[self.subcommand]["ckpt_path"] = self.config_init[self.subcommand]["ckpt_path"] = ckpt
        if ckpt is not None and (version := version_of(Path(ckpt), root)) is not None:
            logger._version = version  # continue that run's TensorBoard directory, not a new version
            run = Path(logger.log_dir)
            taken = {p.name for p in run.glob("config*.yaml")}
            self.save_config_kwargs["config_filename"] = next(f"config-resume-{k}.yaml" for k in range(1, 10_000) if f"config-resume-{k}.yaml" not in taken)

    def _refuse_finished(self, run: Path) -> None:
        """Resuming a run that already trained all the epochs asked for would silently do nothing."""
        import json

        marker = run / FINISHED
        epochs = self.config[self.subcommand]["trainer"].get("max_epochs")
        if marker.is_file() and epochs is not None and 0 <= epochs <= json.loads(marker.read_text())["epochs"]:
            done = json.loads(marker.read_text())["epochs"]
            raise GvmlitError(f"--ckpt_path last: the run {run} already finished its {done} epochs; raise --trainer.max_epochs to train it further")

    def _parse_ckpt_path(self) -> None:
        """Lightning reads hyperparameters from the checkpoint here; gvmlit saves none (the recipe is the
        run's configuration), so it only checks that a checkpoint file is whole — a truncated one fails
        now, in one line, without reading it all."""
        ckpt = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        if ckpt and Path(ckpt).is_file():
            check_checkpoint_file(Path(ckpt))

    def _check_ckpt_path(self, subcommand: str) -> None:
        """A checkpoint to resume from must exist: resuming must never silently start from scratch."""
        ckpt = self.config[subcommand].get("ckpt_path")
        if ckpt == "last":  # no TensorBoard logger to find runs by
            dirs = [Path(c.dirpath) for c in self.trainer.callbacks if isinstance(c, ModelCheckpoint) and c.dirpath]
            if not any((d / "last.ckpt").exists() for d in dirs):
                where = ", ".join(map(str, dirs)) or "no checkpoint directory (checkpointing is off)"
                raise GvmlitError(f"--ckpt_path last: no last.ckpt in {where}; nothing to resume")
        elif ckpt is not None and ckpt not in ("best", "hpc", "registry") and not Path(ckpt).exists():
            raise GvmlitError(f"--ckpt_path {ckpt}: checkpoint file not found")

    def before_fit(self) -> None:
        self._check_ckpt_path("fit")
        self.model.resume_with_changes = bool(self.config["fit"].get("resume_with_changes"))
        warn_about_the_run_length(self.trainer, self.model, self.datamodule)

    def _run_subcommand(self, subcommand: str) -> None:
        """A run stopped by SIGTERM or Ctrl-C leaves a note in its directory (``interrupted.json``: where, the
        checkpoint to resume from) and says how to resume; one that ends normally, ``finished.json``."""
        import json

        try:
            super()._run_subcommand(subcommand)
        except Interrupted as stop:
            stop.checkpoint = self._last_checkpoint()
            log_dir = getattr(self.trainer.logger, "log_dir", None) if self.trainer.logger is not None else None
            if log_dir and self.trainer.is_global_zero and Path(log_dir).is_dir():
                (Path(log_dir) / INTERRUPTED).write_text(json.dumps({"signal": stop.signum, "where": stop.where, "checkpoint": stop.checkpoint}))
            raise

    def _last_checkpoint(self) -> str | None:
        saved = [c.last_model_path or c.best_model_path for c in self.trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
        return next((p for p in saved if p and Path(p).exists()), None)

    def after_fit(self) -> None:
        """Say where the run's checkpoint and logs are; mark the run finished (``--ckpt_path auto`` starts anew)."""
        import json

        if not self.trainer.is_global_zero:
            return
        logger = self.trainer.logger
        if logger is not None and logger.log_dir and Path(logger.log_dir).is_dir() and not self.trainer.interrupted:
            (Path(logger.log_dir) / FINISHED).write_text(json.dumps({"epochs": self.trainer.current_epoch}))
        saved = [c.last_model_path or c.best_model_path for c in self.trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
        if any(saved):
            path = next(p for p in saved if p)
            log.info("checkpoint: %s (resume with --ckpt_path last; export with gvmlit export %s OUTPUT_DIR)", path, path)
        if logger is not None and logger.log_dir:
            log.info("logs: %s (tensorboard --logdir %s)", logger.log_dir, Path(logger.log_dir).parent)

    def before_validate(self) -> None:
        self._check_ckpt_path("validate")

    def before_test(self) -> None:
        self._check_ckpt_path("test")

    def subcommands(self):
        return {name: spec for name, spec in super().subcommands().items() if name in SUBCOMMANDS}


#: files a run leaves in its directory: it ended normally, or was stopped by a signal (gvmlit.stopping)
FINISHED, INTERRUPTED = "finished.json", "interrupted.json"


def warn_about_the_run_length(trainer, model, datamodule) -> None:
    """A run whose length or per-epoch cost is likely a mistake gets one warning line with the numbers."""
    per_epoch = getattr(getattr(model, "rollout", None), "samples_per_prompt", None)
    prompts = getattr(datamodule, "prompts_per_epoch", None)
    if per_epoch is None or prompts is None:
        return
    samples = per_epoch * prompts
    limit = model.rollout.max_samples
    if trainer.max_epochs in (None, -1) and trainer.max_steps in (None, -1) and limit is None:
        log.warning("trainer.max_epochs is %s: the run never ends by itself (%d samples an epoch); set max_epochs or model.rollout.max_samples", trainer.max_epochs, samples)
    if samples > 100_000:
        log.warning("%d samples an epoch (%d prompts × %d): check model.rollout.samples_per_prompt and data.prompts_per_epoch", samples, prompts, per_epoch)


def run_name(model, seed) -> str:
    """A run's directory name from what actually runs: ``<algorithm>[-lora]-<allocator>-seed<k>``
    (``raft++-gvmpp-seed0``, ``grpo-lora-uniform-seed3``, ``sft-seed0``)."""
    algorithm = getattr(model, "variant", type(model).__name__.lower())
    if getattr(getattr(model, "loss", None), "ratio", "token") == "sequence":  # GSPO's sequence-level ratio
        algorithm = "gspo" if algorithm == "grpo" else f"{algorithm}-seq"
    parts = [algorithm]
    if getattr(getattr(model, "policy", None), "has_adapters", False):
        parts.append("lora")
    allocator = getattr(model, "allocator", None)
    if allocator is not None:
        parts.append(allocator.short_name)
    if getattr(getattr(model, "groups", None), "dynamic_sampling", False):
        parts.append("dapo")
    return "-".join(parts) + (f"-seed{seed}" if isinstance(seed, int) else "")


def claim_version(root: Path) -> int:
    """The next ``version_N`` under ``root``, created here and now: ``mkdir`` fails for a second claimant,
    which takes the next number (two runs started together get two directories)."""
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for d in root.iterdir() if (m := re.fullmatch(r"version_(\d+)", d.name))]
    version = max(taken, default=-1) + 1
    while True:
        try:
            (root / f"version_{version}").mkdir()
            return version
        except FileExistsError:
            version += 1


def recipe_components(argv: list[str]) -> dict[str, str]:
    """The class of each component the recipes on the command line choose (later files win):
    ``{"model": "gvmlit.algorithms.GRPO", "model.init_args.allocator": …, "data": …}``."""
    import yaml

    def class_of(value, base: Path) -> str | None:
        if isinstance(value, dict):
            return value.get("class_path")
        if isinstance(value, str) and value.endswith((".yaml", ".yml")) and (base / value).is_file():
            return (yaml.safe_load((base / value).read_text()) or {}).get("class_path")
        return value if isinstance(value, str) and "." in value else None

    found: dict[str, str] = {}
    for name in config_files(argv):
        recipe = yaml.safe_load(Path(name).read_text()) or {}
        for section in ("model", "data"):
            block = recipe.get(section) or {}
            if cls := class_of(block, Path(name).parent):
                found[section] = cls
            for key, value in (block.get("init_args") or {}).items() if isinstance(block, dict) else []:
                if key in ("sampler", "verifier", "allocator", "eval_sampler", "policy", "source", "eval_source") and (cls := class_of(value, Path(name).parent)):
                    found[f"{section}.init_args.{key}"] = cls
    return found


def help_with_components(argv: list[str]) -> None:
    """``--help``, then, with a recipe, the keys of each component it chooses."""
    subcommand = argv[0]
    try:
        GVMLitCLI(args=[a for a in argv if a not in ("-h", "--help")][:1] + ["--help"])
    except SystemExit:
        pass
    configs = [x for name in config_files(argv) for x in ("--config", name)]
    for key, cls in recipe_components(argv).items():
        print(f"\n=== {key}: {cls} (set with --{key}.init_args.KEY or in the recipe) ===", flush=True)
        try:
            GVMLitCLI(args=[subcommand, *configs, f"--{key}.help", cls])
        except SystemExit:
            pass


def _discard_empty_runs() -> None:
    """Remove the run directories this process created if the run failed before saving a checkpoint
    or logging a single scalar (a failed run otherwise leaves an empty ``version_N`` behind)."""
    import shutil

    from gvmlit.ablation import read_scalars

    for directory in NEW_RUN_DIRS:
        if directory.is_dir() and not any(directory.rglob("*.ckpt")) and not read_scalars(directory):
            shutil.rmtree(directory, ignore_errors=True)
            if directory.parent.is_dir() and not any(directory.parent.iterdir()):  # runs/<name>/ held only this run
                directory.parent.rmdir()


def config_files(argv: list[str]) -> list[str]:
    """The ``--config`` files of a command line, in order (``-c F``, ``--config F``, ``--config=F``)."""
    return [b for a, b in zip(argv, argv[1:]) if a in ("-c", "--config")] + [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]


def expand_recipes(argv: list[str]) -> list[str]:
    """Recipes built from parts: ``--config F`` where F says ``base: [A, B]`` (paths relative to F) becomes
    ``--config A --config B --config F`` — the parts first, recursively, later files winning, as if the user
    had listed them. (jsonargparse's own nested ``config:`` key does not merge a file's keys deeply with
    its parts'; separate ``--config`` files do.)"""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "--config") and i + 1 < len(argv):
            name, i = argv[i + 1], i + 2
        elif arg.startswith("--config="):
            name, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        for part in _with_bases(Path(name), ()):
            out += ["--config", str(part)]
    return out


def _with_bases(path: Path, chain: tuple[Path, ...]) -> list[Path]:
    import yaml

    check_config_files(["--config", str(path)])
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    bases = recipe.get("base") if isinstance(recipe, dict) else None
    parts: list[Path] = []
    for base in [bases] if isinstance(bases, str) else bases or []:
        resolved = path.parent / base
        if not resolved.is_file():
            raise GvmlitError(f"{path}: base {base!r} not found (read relative to the recipe: {resolved})")
        if resolved.resolve() in {c.resolve() for c in (*chain, path)}:
            raise GvmlitError(f"{path}: base {base!r} leads back to itself")
        parts += _with_bases(resolved, (*chain, path))
    return [*parts, path]


def check_config_files(argv: list[str]) -> None:
    """Every ``--config`` file exists and is valid YAML; a problem names the file and the line."""
    import yaml

    for name in config_files(argv):
        path = Path(name)
        if not path.is_file():
            raise GvmlitError(f"config file {name!r} not found (relative to the working directory {Path.cwd()})")
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise GvmlitError(f"{name}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
            raise GvmlitError(f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}") from None


def _configure_logging() -> None:
    # Lightning's advertising and a deprecation inside Lightning itself are not the user's business
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda record: "💡 Tip" not in record.getMessage())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # a resumed run's own
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated")  # peft asking transformers
    logger = logging.getLogger("gvmlit")
    if not logger.handlers:
        handler = logging.StreamHandler()
        rank = launcher_rank()
        handler.setFormatter(logging.Formatter("[gvmlit] %(message)s" if rank == "0" else f"[gvmlit rank {rank}] %(message)s"))
        # under several processes, progress messages come from rank 0; warnings and errors from every rank
        handler.addFilter(lambda record: rank == "0" or record.levelno >= logging.WARNING)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


USAGE = """usage: gvmlit {fit,validate,test,export,ablate} ...

  fit       train: gvmlit fit --config RECIPE [--KEY=VALUE …] [--ckpt_path last|auto|FILE]
  validate  evaluate a checkpoint on the validation split: gvmlit validate --config RECIPE --ckpt_path last
  test      evaluate a checkpoint on the test split, table on stdout: gvmlit test --config RECIPE --ckpt_path last
  export    write a checkpoint's policy as a Hugging Face directory: gvmlit export CHECKPOINT OUTPUT_DIR [--adapter] [--overwrite]
  ablate    one recipe, one key swapped per arm, several seeds: gvmlit ablate --config RECIPE --arm NAME=VALUE …

Each subcommand explains itself: gvmlit fit --help, gvmlit fit --config RECIPE --help (every key of the recipe's
components), gvmlit export --help, gvmlit ablate --help. README.md has the quickstart."""


def main(args=None) -> None:
    """Entry point of the ``gvmlit`` console script: ``fit|validate|test`` (LightningCLI) and ``export``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _configure_logging()
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    NEW_RUN_DIRS.clear()  # only this call's runs are removed if it fails (tests call main() many times)
    try:
        if argv[:1] == ["export"]:
            from gvmlit.export import main as export_main

            export_main(argv[1:])
        elif argv[:1] == ["ablate"]:
            from gvmlit.ablation import main as ablate_main

            ablate_main(argv[1:])
        else:
            check_config_files(argv)
            if {"-h", "--help"} & set(argv) and argv[:1] and argv[0] in SUBCOMMANDS:
                help_with_components(expand_recipes(argv))
            else:
                GVMLitCLI(args=argv)
    except Interrupted as stop:
        where = f"; the run's last checkpoint is {stop.checkpoint}" if getattr(stop, "checkpoint", None) else "; no checkpoint was written yet"
        resume = " ".join(["gvmlit", *[a for a in argv if not a.startswith("--ckpt_path")], "--ckpt_path", "last"])
        print(f"gvmlit: {stop}{where} (the end of the last whole epoch)" + (f"; resume with: {resume}" if getattr(stop, "checkpoint", None) else ""), file=sys.stderr)
        sys.exit(stop.exit_code)
    except Exception as err:  # noqa: BLE001 — a user-fixable problem gets one line, anything else its traceback
        _discard_empty_runs()
        cause = _user_error(err)
        if cause is None:
            raise
        print(f"gvmlit: error: {cause}", file=sys.stderr)
        sys.exit(2)


def _user_error(err: BaseException | None) -> GvmlitError | None:
    """The GvmlitError behind ``err`` (also when jsonargparse or Lightning wrapped it), or Lightning's
    own complaint about the trainer's settings (a GPU asked for on a machine without one, a strategy
    that does not fit the accelerator)."""
    seen, trainer_error = set(), None
    while err is not None and id(err) not in seen:
        if isinstance(err, GvmlitError):
            return err
        if isinstance(err, OSError) and err.filename and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENOSPC, errno.EDQUOT):
            return GvmlitError(f"cannot write {err.filename}: {err.strerror} (check the output paths: trainer.logger.init_args.save_dir, trainer.default_root_dir, callbacks)")
        if trainer_error is None and _is_trainer_settings_error(err):
            trainer_error = err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    if trainer_error is None:
        return None
    message = " ".join(str(trainer_error).split())
    if "`fsdp`" in message:
        message += " — gvmlit shards with FSDP2: trainer.strategy.class_path=gvmlit.parallel.FSDP2Strategy"
    elif "invalid strategy name" in message and "." in message:
        message += " — give a strategy class as trainer.strategy.class_path (e.g. gvmlit.parallel.FSDP2Strategy)"
    elif "gpu" in message.lower() and not _cuda_available():
        message += (
            " — this machine has no CUDA GPU: use trainer.accelerator=cpu, or see a GPU recipe's whole loop run on this "
            "CPU with a tiny model: add --config configs/trainer/cpu_tiny.yaml after the recipe"
        )
    return GvmlitError(f"trainer: {message}")


def _is_trainer_settings_error(err: BaseException) -> bool:
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    if isinstance(err, MisconfigurationException):
        return True
    if not isinstance(err, ValueError):
        return False
    tb, frames = err.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return bool(frames) and "accelerator_connector" in frames[-1]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
