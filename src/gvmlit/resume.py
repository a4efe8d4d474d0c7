"""What produced a run, recorded in its checkpoints, and what a resume may change (docs: README "Reliability").

A checkpoint records the learner (class and every constructor argument, components as ``class_path`` /
``init_args``), the data module's settings and the run seed. Resuming compares them with the run about
to continue it:

- another learner (a GRPO checkpoint given to a RAFT recipe) is refused in one line;
- keys that only extend or watch a run may change freely (trainer keys such as ``max_epochs`` are not
  recorded at all; :data:`FREE` lists the others: evaluation, a run's sample budget, progress bars,
  the size of the held-out evaluation);
- any other change (allocator, loss, optimiser, sampler, data) is listed, and refused unless the resume
  says so (``--resume_with_changes true`` on the CLI, ``learner.resume_with_changes = True`` in Python);
  the changed values then take effect — a new learning rate replaces the one in the optimiser state;
- a checkpoint from before this record resumes with a warning that it cannot be checked.
"""

from __future__ import annotations

from gvmlit.checkpoints import _plain, describe_component, init_argument_names
from gvmlit.errors import GvmlitError

#: settings a resume may change without saying so: they extend or observe a run, never alter its course
FREE: tuple[str, ...] = (
    "model.evaluation", "model.eval_sampler", "model.rollout.max_samples", "model.sampler.progress", "model.verifier.progress",
    "data.val_size", "data.test_size", "data.val_batch_size",
)  # fmt: skip


def describe_learner(learner, datamodule, run_seed: int) -> dict:
    """Everything that decides a run's course: the learner's constructor arguments (components described
    by class and arguments), the data module's, the run seed."""

    def arguments(obj) -> dict:
        values = {}
        for name in init_argument_names(type(obj)):
            value = getattr(obj, name, None)
            values[name] = describe_component(value) if _is_component(value) else _plain(value)
        return values

    cls = type(learner)
    return {
        "learner": f"{cls.__module__}.{cls.__qualname__}",
        "model": arguments(learner),
        "data": arguments(datamodule) if datamodule is not None else {},
        "seed": run_seed,
    }


def _is_component(value) -> bool:
    return value is not None and not isinstance(value, (bool, int, float, str, list, tuple, dict)) and hasattr(value, "__dict__") and not hasattr(value, "__dataclass_fields__")


def differences(before: dict, now: dict, prefix: str = "") -> list[str]:
    """``key: old → new`` for every setting that differs (nested keys dotted)."""
    changes: list[str] = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += differences(a, b, f"{name}.")
        elif a != b:
            changes.append(f"{name}: {a!r} → {b!r}")
    return changes


def check_resume(recorded: dict | None, current: dict, allow_changes: bool, log) -> None:
    """Refuse what a resume must not do (see the module docstring); warn what it cannot check."""
    if recorded is None:
        log.warning("this checkpoint was written before gvmlit recorded what produced a run: the resume cannot be checked against it")
        return
    if recorded["learner"] != current["learner"]:
        raise GvmlitError(
            f"the checkpoint was written by {recorded['learner']}, but this run trains {current['learner']}: resume it with "
            f"the recipe that wrote it, or start a new run (without --ckpt_path)"
        )
    before = {"model": recorded["model"], "data": recorded["data"], "seed_everything": recorded["seed"]}
    now = {"model": current["model"], "data": current["data"], "seed_everything": current["seed"]}
    changes = [c for c in differences(before, now) if not c.split(":")[0].startswith(FREE)]
    if not changes:
        return
    listed = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
    if not allow_changes:
        raise GvmlitError(
            f"resuming with settings that differ from the run's: {listed} — resume with the run's own settings, or add "
            f"--resume_with_changes true to continue with these (they then take effect from the next step)"
        )
    log.warning("resuming with changed settings, which take effect from the next step: %s", listed)
