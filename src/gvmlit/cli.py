"""``gvmlit fit|validate|test --config RECIPE``: LightningCLI over the RL modules and the rollout data.

Components are chosen in YAML by ``class_path`` / ``init_args`` (their constructor arguments are the
keys, documented in ``--help``); any key can be overridden on the command line
(``--model.init_args.lr=1e-4``, ``--data.init_args.allocator=gvmlit.allocation.GVMAllocator``).
"""

from __future__ import annotations

import logging
import os
import sys

from lightning.pytorch.cli import LightningCLI

from gvmlit.algorithms.base import RolloutAlgorithm
from gvmlit.data.rollout import RolloutDataModule
from gvmlit.errors import GvmlitError

SUBCOMMANDS = ("fit", "validate", "test")


class GVMLitCLI(LightningCLI):
    """LightningCLI with gvmlit's defaults: a rollout dataset rebuilt every epoch, omegaconf ``${}``."""

    def __init__(self, args=None, run: bool = True) -> None:
        parser_kwargs = {name: {"parser_mode": "omegaconf"} for name in SUBCOMMANDS}
        super().__init__(
            model_class=RolloutAlgorithm,
            datamodule_class=RolloutDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults={
                "reload_dataloaders_every_n_epochs": 1,  # rollouts come from the live policy every epoch
                "num_sanity_val_steps": 0,  # the module evaluates the starting policy itself
                "log_every_n_steps": 1,
            },
            save_config_kwargs={"overwrite": True},
            parser_kwargs=parser_kwargs,
            args=args,
            run=run,
        )

    def subcommands(self):
        return {name: spec for name, spec in super().subcommands().items() if name in SUBCOMMANDS}


def _configure_logging() -> None:
    logger = logging.getLogger("gvmlit")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[gvmlit] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(args=None) -> None:
    """Entry point of the ``gvmlit`` console script."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _configure_logging()
    try:
        GVMLitCLI(args=args)
    except GvmlitError as err:
        print(f"gvmlit: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
