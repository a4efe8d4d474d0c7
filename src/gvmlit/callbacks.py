"""Callbacks: cross-cutting concerns kept out of the modules."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback

log = logging.getLogger("gvmlit")


class ExportPolicy(Callback):
    """Write the trained policy and tokenizer as a Hugging Face directory (``save_pretrained``) when fit ends.

    Args:
        dirpath: output directory; ``from_pretrained(dirpath)`` loads it.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        path = Path(self.dirpath)
        path.mkdir(parents=True, exist_ok=True)
        pl_module.model.save_pretrained(path)
        pl_module.tokenizer.save_pretrained(path)
        log.info("exported the policy to %s", path)
