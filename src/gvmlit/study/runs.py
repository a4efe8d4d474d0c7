"""One study run: ``gvmlit fit`` then ``gvmlit test`` in one process, and the JSON file it leaves.

A run file (``docs/study/runs/<regime>/<algorithm>/<arm>/seed<k>.json``) holds everything the analysis
reads, so that anyone can re-analyse the study without rerunning it:

- ``regime``, ``split`` (``tuning`` | ``heldout``), ``algorithm`` (``grpo`` | ``raftpp``), ``arm``, ``seed``,
  ``commit`` (and ``dirty``: whether src/, configs/ or recipes/ differed from it), ``budget`` (the
  regime's budget in generated training samples), ``overrides`` (every config key after the recipe);
- ``curve``: one point per evaluation, the first at 0 samples (π0), each
  ``{samples, tokens, wall_s, mean_at_k, greedy}`` — generated training samples and response tokens
  (pilots, refills and dropped groups included), seconds since training started, held-out mean@k
  (k = ``curve_k``) and greedy accuracy on the regime's validation problems;
- ``test``: the final ``gvmlit test`` (``problems``, ``k``, ``mean_at_k``, ``greedy``, ``samples``,
  ``tokens``) and ``test_outcomes``: per test problem ``{id, correct, k, greedy_correct}``;
- ``final``: spend and wall time at the end; ``behaviour``: per-epoch means of what the allocator did
  (informative share, zero-variance groups, skipped prompts, rounds, estimation overhead); ``revisit``:
  how often prompts came back (from the run's prompt statistics).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

#: per-epoch metrics averaged over a run (what each allocator did)
BEHAVIOUR = {
    "rollout/informative_sample_share": "informative_sample_share",
    "rollout/zero_variance_groups": "zero_variance_groups",
    "allocation/unspent_samples": "unspent_samples",
    "allocation/extra_prompts": "extra_prompts",
    "rollout/rounds": "rounds",
    "budget/epoch_samples": "epoch_samples",
    "budget/epoch_pilot_samples": "epoch_pilot_samples",
    "rollout/acceptance_rate": "acceptance_rate",
    "allocation/prompts_starved": "prompts_starved",
    "allocation/compute_seconds": "allocator_compute_seconds",  # the allocator's own computation (GVM++ reports it)
    "allocation/skipped_prompts": "skipped_prompts",
}


def read_events(logdir: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar event under ``logdir`` in logging order: tag → [(step, value, wall_time)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events: dict[str, list] = {}
    for directory in sorted({p.parent for p in Path(logdir).rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            events.setdefault(tag, []).extend((e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag))
    for values in events.values():
        values.sort(key=lambda e: e[2])
    return events


def curve_from_events(events: dict, k: int) -> list[dict]:
    """The run's curve: one point per validation, paired with the spend at it (module docstring)."""
    by_samples = events.get(f"val/mean@{k}_vs_samples", [])
    greedy = events.get("val/accuracy_vs_samples", [])
    at_step = events.get(f"val/mean@{k}", [])
    spent = [(s, t) for (_, s, _), (_, t, _) in zip(events.get("budget/samples_generated", []), events.get("budget/tokens_generated", []))]
    start = at_step[0][2] if at_step else 0.0
    curve = []
    for i, (samples, value, _) in enumerate(by_samples):
        tokens = max([t for s, t in spent if s <= samples], default=0.0) if samples > 0 else 0.0
        wall = at_step[i][2] - start if i < len(at_step) else float("nan")
        curve.append({
            "samples": int(samples), "tokens": int(tokens), "wall_s": round(float(wall), 2),
            "mean_at_k": float(value), "greedy": float(greedy[i][1]) if i < len(greedy) else float("nan"),
        })  # fmt: skip
    return curve


def revisit_statistics(checkpoint: Path) -> dict[str, float]:
    """How often prompts came back, from the prompt statistics in the run's last checkpoint: the share of
    prompt-epoch visits that were returns, and prompts seen."""
    from gvmlit.checkpoints import load_checkpoint_file

    state = load_checkpoint_file(checkpoint, weights_only=False).get("gvmlit", {}).get("rollout", {}).get("prompt_stats", {})
    visits = [len({v["epoch"] for v in history["visits"]}) for history in state.values()]
    total = sum(visits)
    return {"prompts_seen": len(visits), "prompt_epochs": total, "revisit_rate": (total - len(visits)) / total if total else 0.0}


def build_record(run_dir: Path, meta: dict, curve_k: int) -> dict:
    """The run file's content from a finished run's directory (TensorBoard events, test outcomes, checkpoint)."""
    fit_dirs = sorted(p for p in (run_dir / "run").glob("version_*") if (p / "checkpoints" / "last.ckpt").exists())
    fit_dir = fit_dirs[-1]
    events = read_events(fit_dir)
    curve = curve_from_events(events, curve_k)
    outcomes_file = next(run_dir.rglob("test_outcomes.json"))
    test = json.loads(outcomes_file.read_text())
    outcomes = [{"id": o["id"], "correct": int(o["correct"]), "k": int(o["k"]), "greedy_correct": bool(o["greedy_correct"])} for o in test["outcomes"]]
    last = lambda tag: events[tag][-1][1] if events.get(tag) else float("nan")  # noqa: E731
    epoch_seconds = sum(v for _, v, _ in events.get("time/epoch_seconds", []))
    estimate = sum(v for _, v, _ in events.get("time/estimate_seconds", []))
    behaviour = {name: float(np.mean([v for _, v, _ in events[tag]])) for tag, name in BEHAVIOUR.items() if events.get(tag)}
    behaviour["epochs"] = len(events.get("time/epoch_seconds", []))
    behaviour["epoch_seconds"] = epoch_seconds / max(behaviour["epochs"], 1)
    behaviour["estimation_share"] = estimate / epoch_seconds if epoch_seconds else 0.0  # pilots' generation included
    if "allocator_compute_seconds" in behaviour:  # the allocator's own computation: its estimation overhead
        behaviour["allocator_compute_share"] = behaviour["allocator_compute_seconds"] * behaviour.get("epochs", 0) / epoch_seconds if epoch_seconds else 0.0
    return {
        **meta,
        "curve_k": curve_k,
        "curve": curve,
        "final": {"samples": int(last("budget/samples_generated")), "tokens": int(last("budget/tokens_generated")),
                  "wall_s": curve[-1]["wall_s"] if curve else float("nan"), "training_seconds": round(epoch_seconds, 2)},
        "test": {
            "problems": len(outcomes), "k": outcomes[0]["k"] if outcomes else 0,
            "mean_at_k": float(np.mean([o["correct"] / o["k"] for o in outcomes])) if outcomes else float("nan"),
            "greedy": float(np.mean([o["greedy_correct"] for o in outcomes])) if outcomes else float("nan"),
            "samples": int(test.get("samples", 0)),
        },
        "test_outcomes": outcomes,
        "behaviour": behaviour,
        "revisit": revisit_statistics(fit_dir / "checkpoints" / "last.ckpt"),
    }  # fmt: skip


def source_state(root: Path) -> tuple[str, bool]:
    """(HEAD's commit, whether src/, configs/ or recipes/ differ from it in the working tree)."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src", "configs", "recipes"], cwd=root).returncode != 0
    return commit, dirty


def fit_and_test(run_dir: Path, config: str, overrides: list[str], test_samples: int) -> None:
    """``gvmlit fit`` and then ``gvmlit test`` of its last checkpoint, in this process (one start-up)."""
    from gvmlit.cli import main

    logger = [
        "--trainer.logger.class_path=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.init_args.save_dir={run_dir}", "--trainer.logger.init_args.name=run",
        f"--trainer.default_root_dir={run_dir}",
    ]  # fmt: skip
    main(["fit", "--config", config, *overrides, *logger])
    checkpoint = max((run_dir / "run").glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    main(["test", "--config", config, *overrides, *logger, f"--model.init_args.evaluation.samples={test_samples}", f"--ckpt_path={checkpoint}"])


if __name__ == "__main__":  # python -m gvmlit.study.runs RUN_DIR CONFIG TEST_SAMPLES OVERRIDE…
    fit_and_test(Path(sys.argv[1]), sys.argv[2], sys.argv[4:], int(sys.argv[3]))
