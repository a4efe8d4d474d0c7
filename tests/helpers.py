"""Shared test helpers: run the real CLI in-process and read TensorBoard event files back."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gvmlit.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--data.init_args.sampler.init_args.progress=false",
    "--data.init_args.verifier.init_args.progress=false",
]


def run_cli(*args: str) -> None:
    main(list(args))


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of the newest event file under ``logdir``: tag → [(step, value)]."""
    files = sorted(Path(logdir).rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    assert files, f"no TensorBoard event file under {logdir}"
    acc = EventAccumulator(str(files[-1].parent), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def read_histogram_tags(logdir: Path) -> list[str]:
    files = sorted(Path(logdir).rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    acc = EventAccumulator(str(files[-1].parent), size_guidance={"histograms": 0})
    acc.Reload()
    return acc.Tags()["histograms"]
