"""Checkpoints that survive a kill, one directory per run, and ``--ckpt_path last`` that means the last run.

Layout (with a TensorBoard logger ``save_dir: runs``, ``name: grpo_gvm``)::

    runs/grpo_gvm/version_3/                 the run: TensorBoard events, config.yaml
    runs/grpo_gvm/version_3/checkpoints/last.ckpt     rewritten at the end of every epoch
    runs/grpo_gvm/last.ckpt -> version_3/checkpoints/last.ckpt   the most recent run's last checkpoint

``--ckpt_path last`` resumes the run ``runs/<name>/last.ckpt`` points to (the newest run that wrote a
checkpoint) and logs into that run's own directory again, so its curves continue where they stopped.
Runs of one recipe never share a checkpoint directory, so two at once do not overwrite each other.

A single-file checkpoint is written to a temporary file *next to* the target and renamed over it, so a
process killed mid-write leaves the previous checkpoint intact (and the half-written file in the same
directory, where the next save removes it). FSDP2's distributed checkpoints (a directory written by
torch's DCP) are not covered by this guarantee.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gvmlit.errors import GvmlitError

#: temporary files of interrupted writes: ``.last.ckpt.<pid>.tmp``
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the target's directory, then ``os.replace``; loading a
    damaged file is a one-line error naming it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_partial_writes(target.parent)
        partial = target.parent / f".{target.name}.{os.getpid()}.tmp"
        try:
            with partial.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint_file(Path(path), map_location=map_location or "cpu", weights_only=True if weights_only is None else weights_only)


def load_checkpoint_file(path: Path, map_location: Any = "cpu", weights_only: bool = True) -> dict[str, Any]:
    """``torch.load`` with one-line errors: missing, damaged (truncated) or carrying code that a
    weights-only load refuses to run."""
    if not path.is_file():
        raise GvmlitError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()
        detail = next((line for line in reason if "GLOBAL" in line or "Unsupported" in line), reason[0] if reason else "")
        raise GvmlitError(f"{path} holds objects a safe (weights-only) load refuses — refusing to run code from a checkpoint ({detail.strip()})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GvmlitError(f"checkpoint {path} is damaged or not a checkpoint ({first}); resume from an earlier one") from None


def check_checkpoint_file(path: Path) -> None:
    """A cheap wholeness check: a ``torch.save`` file is a zip archive whose directory sits at its end,
    so a truncated file fails here without being read."""
    if not zipfile.is_zipfile(path):
        raise GvmlitError(f"checkpoint {path} is damaged or not a checkpoint (not a complete torch.save archive); resume from an earlier one")


def remove_partial_writes(directory: Path) -> None:
    """Delete temporary files left by writers that no longer run (killed mid-write)."""
    for entry in directory.iterdir() if directory.is_dir() else []:
        match = _PARTIAL.match(entry.name)
        if match and not _alive(int(match["pid"])):
            entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SafeCheckpoints(Callback):
    """Makes single-file checkpoints atomic (:class:`AtomicCheckpointIO`) and points
    ``<save_dir>/<name>/last.ckpt`` at the newest run's ``last.ckpt`` after every save."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        strategy = trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:  # the default; a user's own plugin is kept
            strategy.checkpoint_io = AtomicCheckpointIO()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        point_last_at_newest(trainer)  # the previous epoch's checkpoint is written by now

    def on_fit_end(self, trainer, pl_module) -> None:
        point_last_at_newest(trainer)  # after ModelCheckpoint's own on_train_end save


def point_last_at_newest(trainer) -> None:
    """Update the run root's ``last.ckpt`` link (rank 0, TensorBoard logger, a ModelCheckpoint with a
    ``last.ckpt`` in the run's directory)."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = trainer.logger
    if not trainer.is_global_zero or not isinstance(logger, TensorBoardLogger):
        return
    for callback in trainer.checkpoint_callbacks:  # the CLI's: one last.ckpt per run (ModelCheckpoint filename "last")
        if isinstance(callback, ModelCheckpoint) and callback.dirpath and (Path(callback.dirpath) / "last.ckpt").exists():
            link = Path(logger.root_dir) / "last.ckpt"
            target = os.path.relpath(Path(callback.dirpath) / "last.ckpt", link.parent)
            if link.is_symlink() and os.readlink(link) == target:
                return
            temporary = link.parent / f".last.ckpt.{os.getpid()}.link"
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(target)
            os.replace(temporary, link)
            return


def run_to_resume(root: Path) -> Path | None:
    """The checkpoint ``--ckpt_path last`` resumes: the most recently written
    ``root/version_*/checkpoints/last.ckpt`` (the last run that saved one)."""
    candidates = [p for p in root.glob("version_*/checkpoints/last.ckpt") if p.exists()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def version_of(checkpoint: Path, root: Path) -> int | str | None:
    """The logger version of the run a checkpoint belongs to (``root/version_N/checkpoints/…``)."""
    try:
        relative = checkpoint.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    if len(relative.parts) >= 3 and relative.parts[1] == "checkpoints":
        name = relative.parts[0]
        return int(name.split("_")[-1]) if re.fullmatch(r"version_\d+", name) else name
    return None


# ---------------------------------------------------------------------- what a checkpoint records
def rng_state() -> dict:
    """Every global random state (torch, CUDA, NumPy, Python) as values a weights-only load accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def init_argument_names(cls) -> list[str]:
    """The constructor arguments of a class, its parents' included where it passes ``**kwargs`` on."""
    import inspect

    names: list[str] = []
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        names += [p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD) and p not in names]
        if not any(v.kind == v.VAR_KEYWORD for v in params.values()):
            break
    return names


def describe_component(component) -> dict:
    """A component's class and constructor arguments as plain values (``class_path`` / ``init_args``,
    as in a recipe; an argument kept under its own name), with a seed derived from the run seed written
    out: what produced a checkpoint."""
    cls = type(component)
    args = {k: _plain(getattr(component, k)) for k in init_argument_names(cls) if hasattr(component, k)}
    if "seed" in args and args["seed"] is None and hasattr(component, "resolved_seed"):
        args["seed"] = component.resolved_seed
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    for kind in (int, float, str):  # jsonargparse's PositiveInt & co. are subclasses a weights-only load refuses
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)
