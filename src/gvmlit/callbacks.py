"""Callbacks: cross-cutting concerns kept out of the modules."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback

from gvmlit.export import save_policy

log = logging.getLogger("gvmlit")


class ExportPolicy(Callback):
    """Write the trained policy and tokenizer as a Hugging Face directory (``save_pretrained``) when fit ends.

    Args:
        dirpath: output directory; ``from_pretrained(dirpath)`` loads it.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath

    def on_train_end(self, trainer, pl_module) -> None:
        save_policy(pl_module.model, pl_module.tokenizer, self.dirpath)  # every rank: gathers sharded weights
        if trainer.is_global_zero:
            log.info("exported the policy to %s", Path(self.dirpath))
