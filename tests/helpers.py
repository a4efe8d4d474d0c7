"""Shared test helpers: run the real CLI in-process and read TensorBoard event files back."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gvmlit.cli import main
from gvmlit.records import PromptRecord

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--model.init_args.sampler.init_args.progress=false",
    "--model.init_args.verifier.init_args.progress=false",
]


def run_cli(*args: str) -> None:
    main(list(args))


def cli_error(*args: str, cwd: Path = ROOT) -> str:
    """Run ``gvmlit ARGS`` in this process (in ``cwd``), expecting exit status 2 and exactly one line
    ``gvmlit: error: …`` on stderr, which it returns."""
    import contextlib
    import io
    import os

    import pytest

    stderr, here = io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_info:
            main(list(args))
    finally:
        os.chdir(here)
    assert exit_info.value.code == 2, stderr.getvalue()[-2000:]
    lines = [line for line in stderr.getvalue().splitlines() if line.startswith("gvmlit: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr.getvalue(), stderr.getvalue()[-2000:]
    return lines[0]


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


def gold_records(golds) -> list[PromptRecord]:
    """Prompt records carrying only reference answers (verifier tests)."""
    return [PromptRecord(f"gold-{i}", "", gold) for i, gold in enumerate(golds)]


def rewards(verifier, responses, golds) -> list[float]:
    """The verifier's rewards for ``responses`` against ``golds``."""
    return [v.reward for v in verifier.score(list(responses), gold_records(golds))]


SFT_POLICY = ROOT / "models" / "arith-sft"


def small_learner(cls=None, *, allocator=None, samples_per_prompt: int = 2, max_new_tokens: int = 24, **kwargs):
    """A real learner on the built-in task's π0 (models/arith-sft), small enough for a test."""
    from gvmlit.algorithms import RAFT, EvaluationSettings, RolloutSettings
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler
    from gvmlit.verifiers import ArithmeticVerifier

    kwargs.setdefault("rollout", RolloutSettings(samples_per_prompt=samples_per_prompt))
    kwargs.setdefault("evaluation", EvaluationSettings(samples=2))
    return (cls or RAFT)(
        policy=PretrainedPolicy(str(SFT_POLICY)), allocator=allocator, sampler=HFSampler(max_new_tokens=max_new_tokens, progress=False),
        verifier=ArithmeticVerifier(progress=False), **kwargs,
    )  # fmt: skip


def small_data(num_train: int = 48, prompts_per_epoch: int = 8, **kwargs):
    """The built-in task through the rollout data module, a few prompts an epoch; pool from the run seed."""
    from gvmlit.data import ArithmeticTask, RolloutDataModule

    kwargs.setdefault("val_size", 8)
    return RolloutDataModule(
        source=ArithmeticTask(num_train=num_train, num_val=16), prompts_per_epoch=prompts_per_epoch, batch_size=8,
        prompt_template="{problem}=", **kwargs,
    )  # fmt: skip


def assert_readable(figure) -> None:
    """A figure people can read: it has a title, labelled axes, and its title, axis labels, tick labels and
    legend all lie inside the figure without the legend covering the title (rendered for real)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    frame = figure.bbox
    titles = [t for t in [figure._suptitle] + [ax.title for ax in figure.axes] if t is not None and t.get_text()]
    assert titles, "the figure has no title"
    for ax in figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel(), f"unlabelled axes: {ax.get_title()!r}"
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None] + list(figure.legends)
    boxes = [(t, t.get_window_extent(renderer)) for t in titles + legends]
    boxes += [(ax, ax.get_tightbbox(renderer)) for ax in figure.axes]  # what is drawn: labels, tick labels, title
    for artist, box in boxes:
        assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1 and box.y0 >= frame.y0 - 1 and box.y1 <= frame.y1 + 1, (
            f"{artist} is cut off: {box} outside the figure {frame}"
        )
    for legend in legends:
        for title in titles:
            assert not legend.get_window_extent(renderer).overlaps(title.get_window_extent(renderer)), "the legend covers the title"
