"""The study's regimes and arms: what each run of ``bench/study.py`` trains (docs/study/PROTOCOL.md).

A run is ``gvmlit fit`` on the CPU recipe of its algorithm (``recipes/cpu/{grpo,raftpp}_uniform.yaml``)
with the study's common settings, its regime's overrides and its arm's overrides, stopped at the
regime's budget in generated training samples (``rollout.max_samples``), then ``gvmlit test`` on the
regime's own test split. Everything that varies between seeds comes from the run seed
(``--seed_everything``, gvmlit.seeding): the training pool, the prompt order, sampling, the allocators'
randomness; the evaluation problems never move.

Tuning regimes (GVM++ and the loss aggregation were chosen on these, and only these):

Every regime: 16 prompts an epoch, 8 samples per prompt (N = 128), a budget of 20 uniform epochs
(B = 2 560 generated samples), two passes over each epoch's rollouts (four in ``noise_bound``), an evaluation every second epoch
(and of π0) on 128 validation problems (4 samples and a greedy answer each), the final test on 500 test
problems (8 samples and a greedy answer), responses up to 48 tokens.

- ``fresh``: a pool of 2 000 — no prompt comes back in a run.
- ``noise_bound``: a pool of 64, four passes of mini-batches of 16 over each epoch's rollouts — each
  prompt comes back every 4 epochs; many small, noisy updates.
- ``math_like``: a pool of 48 in which a third of the problems are out of the warm start's reach
  (3-digit sums) and easy ones get solved: many groups carry no gradient, as in math RL; each prompt
  comes back every 3 epochs.

Held-out regimes (designed before the freeze, never run before it; their generator seeds come from the
frozen commit's hash, :func:`heldout_seeds`):

- ``half_unsolvable`` (a): a pool of 64 whose second half is 4- and 5-term 3-digit sums, which π0 never
  solves; each prompt comes back every 4 epochs.
- ``late_solvable`` (b): a pool of 32, half of it 5-term 2-digit sums — π0 solves 5 % of their samples
  and none of 8 samples for 73 % of them, the rest 3-term 2-digit and 4-term 1-digit sums, whose steps
  they are made of; each prompt comes back every 2 epochs, so "skip after one zero-variance visit" is
  wrong there if the long sums become solvable as the short ones are learnt.
- ``never_back`` (c): a pool of 2 000 of 2-term 1- and 2-digit, 3-term and 4-term 2-digit sums — prompts
  never come back, so an allocator's memory cannot help. (It replaced ``mixed_digits``, sums from
  :class:`~gvmlit.study.tasks.MixedDigitsTask`, before the freeze: π0 solves 1.3 % of their samples,
  nothing to learn from in 2 560 samples; docs/study/PROTOCOL.md §3.)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

#: the study's settings common to every run (evaluation sizes, response length, quiet logs)
COMMON = [
    "--data.init_args.source.init_args.num_val=128",
    "--data.init_args.source.init_args.num_test=500",
    "--data.init_args.val_size=128",
    "--data.init_args.test_size=500",
    "--model.init_args.evaluation.samples=4",
    "--model.init_args.sampler.init_args.max_new_tokens=48",
    "--model.init_args.sampler.init_args.progress=false",
    "--model.init_args.verifier.init_args.progress=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
#: samples per test problem in the final ``gvmlit test`` (plus one greedy answer)
TEST_SAMPLES = 8
CURVE_SAMPLES = 4
ALGORITHMS = {"grpo": "recipes/cpu/grpo_uniform.yaml", "raftpp": "recipes/cpu/raftpp_uniform.yaml"}


@dataclass(frozen=True)
class Regime:
    """A regime: a training pool and an epoch's size, a budget, and how often prompts come back.

    Attributes:
        name: the folder name under docs/study/runs/.
        split: ``tuning`` (GVM++ was chosen on it) or ``heldout``.
        prompts_per_epoch: ppe; an epoch's budget is 8 × ppe samples.
        epochs: the budget in uniform's epochs: B = epochs × 8 × ppe generated samples.
        overrides: the regime's own config keys.
        revisit: how often a prompt comes back, in words (the measured rate is in each run file).
        eval_every: uniform epochs' worth of generated samples between evaluations (curve points), for every
            arm whatever it spends per epoch (gvmlit.study.callbacks.EvaluateEverySamples), and one at the budget.
        source: the task's class, when it is not the built-in ArithmeticTask.
    """

    name: str
    split: str
    prompts_per_epoch: int
    epochs: int
    overrides: list[str] = field(default_factory=list)
    revisit: str = ""
    eval_every: int = 2
    source: str | None = None

    @property
    def budget(self) -> int:
        return self.epochs * 8 * self.prompts_per_epoch


def _data(ppe: int, batch: int, update_epochs: int, pool: int) -> list[str]:
    return [
        f"--data.init_args.prompts_per_epoch={ppe}", f"--data.init_args.batch_size={batch}",
        f"--data.init_args.update_epochs={update_epochs}", f"--data.init_args.source.init_args.num_train={pool}",
    ]  # fmt: skip


REGIMES: dict[str, Regime] = {
    "fresh": Regime("fresh", "tuning", 16, 20, _data(16, 32, 2, 2000), "never (16 new prompts an epoch from 2 000)"),
    "noise_bound": Regime("noise_bound", "tuning", 16, 20, _data(16, 16, 4, 64), "every 4 epochs (16 an epoch from 64)"),
    "math_like": Regime(
        "math_like", "tuning", 16, 20,
        [*_data(16, 32, 2, 48), "--data.init_args.source.init_args.levels=[[2,1],[3,1],[2,2],[3,2],[3,3],[4,3]]"],
        "every 3 epochs (16 an epoch from 48)",
    ),  # fmt: skip
    "half_unsolvable": Regime(
        "half_unsolvable", "heldout", 16, 20,
        [*_data(16, 32, 2, 64), "--data.init_args.source.init_args.levels=[[2,1],[3,1],[2,2],[3,2],[4,3],[5,3]]",
         "--data.init_args.source.init_args.level_weights=[1,1,1,1,2,2]"],
        "every 4 epochs (16 an epoch from 64)",
    ),  # fmt: skip
    "late_solvable": Regime(
        "late_solvable", "heldout", 16, 20,
        [*_data(16, 32, 2, 32), "--data.init_args.source.init_args.levels=[[3,2],[4,1],[5,2]]",
         "--data.init_args.source.init_args.level_weights=[1,1,2]"],
        "every 2 epochs (16 an epoch from 32)",
    ),  # fmt: skip
    "never_back": Regime(
        "never_back", "heldout", 16, 20,
        [*_data(16, 32, 2, 2000), "--data.init_args.source.init_args.levels=[[2,1],[2,2],[3,2],[4,2]]"],
        "never (16 new prompts an epoch from 2 000)",
    ),  # fmt: skip
}

#: arm → (allocator preset, extra overrides for GRPO, extra overrides for RAFT++); None: not run with it
ARMS: dict[str, tuple[str, list[str] | None, list[str] | None]] = {
    "uniform": ("configs/allocator/uniform.yaml", [], []),
    "zero_variance_filter": ("configs/allocator/zero_variance_filter.yaml", [], []),
    "gvm": ("configs/allocator/gvm.yaml", ["--model.init_args.groups.singleton_groups=reward"], []),  # the reference code's singletons
    "gvmpp": ("configs/allocator/gvmpp.yaml", [], []),
    "gvmpp_stop": ("configs/allocator/gvmpp.yaml", ["--model.init_args.allocator.init_args.refill=false"], ["--model.init_args.allocator.init_args.refill=false"]),
    "knapsack": ("configs/allocator/knapsack.yaml", [], []),
    "greso": ("configs/allocator/greso.yaml", ["--model.init_args.groups.dynamic_sampling=true"], []),
    "dapo": ("configs/allocator/uniform.yaml", ["--model.init_args.groups.dynamic_sampling=true"], None),
    "pilot_commit": ("configs/allocator/pilot_commit.yaml", [], []),
}


def arm_overrides(arm: str, algorithm: str) -> list[str] | None:
    """The overrides that make ``arm`` for ``algorithm`` (None: the arm does not exist for it)."""
    preset, grpo, raftpp = ARMS[arm]
    extra = grpo if algorithm == "grpo" else raftpp
    return None if extra is None else [f"--model.init_args.allocator={preset}", *extra]


def heldout_seeds(commit: str, regime: str, seed: int) -> list[str]:
    """The held-out regimes' generator seeds, derived from the frozen commit's hash so that nobody could
    have tried them before the freeze (docs/study/PROTOCOL.md):

        eval_seed  = crc32("<commit>:<regime>:eval")           the validation and test problems
        pool seed  = crc32("<commit>:<regime>:pool:<seed>")    the training pool of run seed <seed>
    """
    eval_seed = zlib.crc32(f"{commit}:{regime}:eval".encode())
    pool_seed = zlib.crc32(f"{commit}:{regime}:pool:{seed}".encode())
    return [f"--data.init_args.source.init_args.eval_seed={eval_seed}", f"--data.init_args.source.init_args.seed={pool_seed}"]


def run_overrides(regime: Regime, algorithm: str, arm: str, seed: int, frozen_commit: str | None = None, extra: list[str] = ()) -> list[str] | None:
    """Every config key of one run after its recipe (None: the arm does not exist for the algorithm)."""
    own = arm_overrides(arm, algorithm)
    if own is None:
        return None
    seeds = []
    if regime.split == "heldout":
        if not frozen_commit:
            raise ValueError(f"held-out regime {regime.name} needs the frozen commit (its generator seeds come from it)")
        seeds = heldout_seeds(frozen_commit, regime.name, seed)
    return [
        *regime.overrides, *COMMON, *seeds, *own, f"--seed_everything={seed}",
        f"--model.init_args.rollout.max_samples={regime.budget}", f"--trainer.max_epochs={regime.epochs * 10}",
        "--trainer.check_val_every_n_epoch=1", "--trainer.callbacks+=gvmlit.study.callbacks.EvaluateEverySamples",
        f"--trainer.callbacks.every={regime.eval_every * 8 * regime.prompts_per_epoch}", *extra,
    ]  # fmt: skip
