"""``gvmlit fit|validate|test --config RECIPE``: LightningCLI over the RL modules and the rollout data.

Components are chosen in YAML by ``class_path`` / ``init_args`` (their constructor arguments are the
keys, documented in ``--help``); any key can be overridden on the command line
(``--model.init_args.lr=1e-4``, ``--data.init_args.allocator=gvmlit.allocation.GVMAllocator``).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
import sys
from pathlib import Path

from jsonargparse import ActionConfigFile
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from gvmlit.algorithms.base import RolloutAlgorithm
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.errors import GvmlitError
from gvmlit.progress import launcher_rank

SUBCOMMANDS = ("fit", "validate", "test")


def summarize_config_error(message: str) -> str:
    """Turn jsonargparse's nested union report into one line naming the key and the problem."""
    keys = re.findall(r'Parser key "([^"]+)"', message)
    path = ".".join(keys)
    given = re.findall(r"Given value: NestedArg\(key='([^']+)', val='([^']*)'\)", message)
    classes = re.findall(r"Problem with given class_path '([^']+)'", message)
    if m := re.search(r"Option '([^']+)' is not accepted", message):
        owner = classes[-1] if classes else path
        allowed = _init_arguments(owner)
        hint = f"; accepted: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {m.group(1)!r} under '{path}' ({owner}){hint}"
    if m := re.search(r"module '([^']+)' has no attribute '([^']+)'", message):
        return f"unknown class_path '{m.group(1)}.{m.group(2)}' for '{path}': {m.group(1)} has no {m.group(2)!r}"
    if m := re.search(r"No module named '([^']+)'", message):
        return f"unknown class_path for '{path}': no module named {m.group(1)!r}"
    if m := re.search(r"Import path does not correspond to a subclass of (\w+)", message):
        value = given[-1][1] if given else "the given class"
        return f"'{path}' must be a {m.group(1)}, but {value} is not one"
    if m := re.search(r"File does not exist: '([^']+)'", message):
        return f"file {m.group(1)!r} does not exist (from '{path or 'config'}')"
    if m := re.search(r"Expected a typing.Literal\[(.*?)\]\. Got value: (.*)", message):
        return f"'{path}' must be one of {m.group(1)}; got {m.group(2).strip()!r}"
    first = next((line.strip() for line in message.splitlines() if line.strip()), message)
    return f"{path}: {first}" if path and not first.startswith(path) else first


def _init_arguments(class_path: str) -> list[str]:
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p != "self" and params[p].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


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
        parser_kwargs: dict = {name: {"parser_mode": "omegaconf"} for name in SUBCOMMANDS}
        parser_kwargs["description"] = (
            "Train and evaluate reasoners with RAFT, RAFT++ or GRPO and per-prompt budget allocation. "
            "Subcommands: fit | validate | test --config RECIPE (see `gvmlit fit --help` for every key); "
            "export CHECKPOINT OUTPUT_DIR writes a checkpoint's policy as a Hugging Face model directory."
        )
        super().__init__(
            model_class=RolloutAlgorithm,
            datamodule_class=RolloutDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults={
                "reload_dataloaders_every_n_epochs": 1,  # rollouts come from the live policy every epoch
                "num_sanity_val_steps": 0,  # the module evaluates the starting policy itself
                "log_every_n_steps": 1,
                "use_distributed_sampler": False,  # the data module splits rollouts across ranks by tokens
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
        return parser

    def _instantiate_trainer(self, config: dict, callbacks: list):
        """Unless checkpointing is off or configured, keep ``last.ckpt`` every epoch in an unversioned
        ``<save_dir>/<name>/checkpoints`` so that ``--ckpt_path last`` finds it in a later run."""
        configured = list(callbacks) + list(config.get("callbacks") or [])
        if config.get("enable_checkpointing", True) is not False and not any(isinstance(c, ModelCheckpoint) for c in configured):
            logger = config.get("logger")
            dirpath = Path(logger.root_dir) / "checkpoints" if isinstance(logger, TensorBoardLogger) else None
            callbacks = [*callbacks, ModelCheckpoint(dirpath=dirpath, save_last=True, save_top_k=1)]
        return super()._instantiate_trainer(config, callbacks)

    def _check_ckpt_path(self, subcommand: str) -> None:
        """A checkpoint to resume from must exist: resuming must never silently start from scratch."""
        ckpt = self.config[subcommand].get("ckpt_path")
        if ckpt is None:
            return
        if ckpt == "last":
            dirs = [Path(c.dirpath) for c in self.trainer.callbacks if isinstance(c, ModelCheckpoint) and c.dirpath]
            if not any((d / "last.ckpt").exists() for d in dirs):
                where = ", ".join(map(str, dirs)) or "no checkpoint directory (checkpointing is off)"
                raise GvmlitError(f"--ckpt_path last: no last.ckpt in {where}; nothing to resume")
        elif ckpt not in ("best", "hpc", "registry") and not Path(ckpt).exists():
            raise GvmlitError(f"--ckpt_path {ckpt}: checkpoint file not found")

    def before_fit(self) -> None:
        self._check_ckpt_path("fit")

    def before_validate(self) -> None:
        self._check_ckpt_path("validate")

    def before_test(self) -> None:
        self._check_ckpt_path("test")

    def subcommands(self):
        return {name: spec for name, spec in super().subcommands().items() if name in SUBCOMMANDS}


def _configure_logging() -> None:
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


def main(args=None) -> None:
    """Entry point of the ``gvmlit`` console script: ``fit|validate|test`` (LightningCLI) and ``export``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _configure_logging()
    argv = list(sys.argv[1:] if args is None else args)
    try:
        if argv[:1] == ["export"]:
            from gvmlit.export import main as export_main

            export_main(argv[1:])
        else:
            GVMLitCLI(args=args)
    except Exception as err:  # noqa: BLE001 — a user-fixable problem gets one line, anything else its traceback
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
        message += " — this machine has no CUDA GPU: use trainer.accelerator=cpu"
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
