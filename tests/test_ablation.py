"""The ablation and the study: curves, the sample-budget stop, and the analysis on synthetic run files."""

import json
import math

import numpy as np
import pytest

from gvmlit.ablation import run_curves
from gvmlit.study.stats import area_under_curve, bca_interval, curve_value, first_reaching, paired_t_interval, t_quantile


def test_seconds_pair_each_evaluation_with_the_epochs_before_it():
    # four epochs of 1, 2, 3, 4 s ending at global steps 4, 8, 12, 16; evaluated every second epoch (and π0)
    scalars = {
        "time/epoch_seconds": [(4, 1.0), (8, 2.0), (12, 3.0), (16, 4.0)],
        "val/mean@4": [(0, 0.30), (8, 0.40), (16, 0.50)],
        "val/mean@4_vs_samples": [(0, 0.30), (1024, 0.40), (2048, 0.50)],
    }
    curves = run_curves(scalars, "val/mean@4")
    assert curves["samples"] == [(0, 0.30), (1024, 0.40), (2048, 0.50)]
    assert curves["seconds"] == [(0.0, 0.30), (3.0, 0.40), (10.0, 0.50)]


# ---------------------------------------------------------------- the study's statistics
def test_area_levels_and_intervals_against_hand_computations():
    curve = [(0, 0.4), (100, 0.5), (200, 0.6)]
    assert area_under_curve(curve, 200) == pytest.approx(0.5)
    assert area_under_curve(curve, 150) == pytest.approx((45 + 26.25) / 150)  # cut and interpolated at the budget
    assert curve_value(curve, 250) == 0.6  # flat beyond the last evaluation
    assert first_reaching(curve, 0.55) == pytest.approx(150)  # interpolated between the evaluations around it
    assert first_reaching(curve, 0.3) == 100  # π0's own point does not count
    assert math.isinf(first_reaching(curve, 0.7))
    assert t_quantile(0.975, 9) == pytest.approx(2.262, abs=1e-3) and t_quantile(0.975, 2) == pytest.approx(4.303, abs=1e-3)
    mean, low, high = paired_t_interval([1.0, 2.0, 3.0, 4.0])
    assert (mean, low, high) == pytest.approx((2.5, 2.5 - 3.1824 * 1.2910 / 2, 2.5 + 3.1824 * 1.2910 / 2), abs=1e-3)
    # BCa on a symmetric sample: close to the percentile interval, around the mean, and reproducible
    differences = np.random.default_rng(0).normal(0.02, 0.01, size=12)
    first, second = bca_interval(differences), bca_interval(differences)
    assert first == second and first[1] < first[0] < first[2]
    assert first[2] - first[1] == pytest.approx(2 * 1.96 * differences.std(ddof=1) / np.sqrt(12), rel=0.25)


def _synthetic_run(arm, seed, end, regime="math_like", algorithm="grpo", split="heldout", budget=1000):
    """A run file whose curve is a straight line from 0.4 at 0 samples to ``end`` at the budget (AUC = (0.4 + end) / 2)."""
    curve = [{"samples": s, "tokens": 20 * s, "wall_s": s / 100, "mean_at_k": 0.4 + (end - 0.4) * s / budget, "greedy": 0.5} for s in range(0, budget + 1, 250)]
    return {
        "regime": regime, "split": split, "algorithm": algorithm, "arm": arm, "seed": seed, "commit": "0" * 40, "budget": budget,
        "curve_k": 4, "curve": curve, "final": {"samples": budget, "tokens": 20 * budget, "wall_s": 10.0},
        "test": {"problems": 2, "k": 8, "mean_at_k": end, "greedy": 0.5, "samples": budget},
        "test_outcomes": [{"id": "a", "correct": 4, "k": 8, "greedy_correct": True}, {"id": "b", "correct": 0, "k": 8, "greedy_correct": False}],
        "behaviour": {"estimation_share": 0.01, "informative_sample_share": 0.5}, "revisit": {"revisit_rate": 0.6},
    }  # fmt: skip


def test_a_synthetic_pair_of_arms_gives_the_known_delta_auc_and_interval(tmp_path):
    from gvmlit.study.analysis import analyze

    uniform_ends = [0.60, 0.62, 0.58, 0.61]
    deltas = [0.01, 0.03, 0.02, 0.04]  # GVM++'s AUC − uniform's, seed by seed
    for seed, (end, delta) in enumerate(zip(uniform_ends, deltas)):
        for arm, value in (("uniform", end), ("gvmpp", end + 2 * delta)):
            path = tmp_path / "runs" / "math_like" / "grpo" / arm / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_synthetic_run(arm, seed, value)))
    (comparison,) = analyze(tmp_path / "runs", tmp_path / "out", plots=False)
    result = comparison["against_uniform"]["gvmpp"]
    assert result["differences"] == pytest.approx(deltas)
    half = 3.1824 * np.std(deltas, ddof=1) / 2  # t(0.975, 3) · sd / √4
    assert result["mean"] == pytest.approx(0.025) and result["t_interval"] == pytest.approx([0.025 - half, 0.025 + half], abs=1e-4)
    low, high = result["bca_interval"]
    assert 0.01 <= low < 0.025 < high <= 0.04  # within the range of the differences
    text = (tmp_path / "out" / "results.md").read_text()
    assert "primary comparison" in text and "+0.025" in text
    # the decision rule: one regime, its interval above 0; no overall claim from one regime (two needed)
    assert f"- GVM++ beats uniform on math_like per generated sample: ΔAUC = +0.025 [{0.025 - half:+.3f}, {0.025 + half:+.3f}] (n = 4 paired seeds)." in text
    assert "Overall: GVM++ is not shown to beat uniform on the held-out regimes (1 with L > 0, 0 with U < 0 after Holm)." in text
    # the pre-registered levels are π0 + 0.05, 0.10, 0.15; uniform (seed 0) reaches 0.45 at 250 samples, never 0.55 with end 0.58
    assert comparison["levels"] == pytest.approx([0.45, 0.50, 0.55])
    uniform = {s["seed"]: s for s in comparison["summaries"]["uniform"]}
    assert uniform[0]["to_level"][0] == pytest.approx(250) and uniform[2]["to_level"][2] == pytest.approx(1000 * 0.15 / 0.18)
    assert uniform[0]["last_quarter_gain"] == pytest.approx(0.05)


# ---------------------------------------------------------------- gvmlit ablate: recomputes, merges, equal samples
def _ablation_run(directory, values, greedy, final_samples):
    from torch.utils.tensorboard import SummaryWriter

    directory.mkdir(parents=True)
    writer = SummaryWriter(str(directory / "run"))
    for (samples, mean, passed), g in zip(values, greedy):
        writer.add_scalar("val/mean@4_vs_samples", mean, samples)
        writer.add_scalar("val/pass@4_vs_samples", passed, samples)
        writer.add_scalar("val/accuracy_vs_samples", g, samples)
    writer.close()
    curve = [[s, m] for s, m, _ in values]  # what an older summary cached: mean@4 only
    (directory / "result.json").write_text(json.dumps({"arm": directory.parent.name, "seed": 0, "curves": {"samples": curve, "seconds": []}, "final": {}}))


def test_ablate_summarize_recomputes_for_the_metric_and_merges_arms_already_there(tmp_path):
    from types import SimpleNamespace

    from gvmlit.ablation import ablate

    _ablation_run(tmp_path / "uniform" / "seed0", [(0, 0.3, 0.5), (100, 0.4, 0.7), (200, 0.5, 0.8)], [0.4, 0.5, 0.6], 200)
    _ablation_run(tmp_path / "gvmpp" / "seed0", [(0, 0.3, 0.5), (100, 0.5, 0.75), (150, 0.6, 0.9)], [0.4, 0.6, 0.7], 150)
    args = SimpleNamespace(out=str(tmp_path), arm=["gvmpp=x"], seeds=[0], jobs=1, run=False, metric="val/pass@4", levels=[0.7], title="t")
    results = ablate(args, [])
    assert [r["arm"] for r in results] == ["gvmpp", "uniform"]  # the arm asked for, then the one already in the folder
    assert results[1]["curves"]["samples"][-1] == (200, pytest.approx(0.8))  # pass@4, read afresh (the cache held mean@4)
    table = (tmp_path / "ablation.md").read_text()
    # at equal samples (150, the spend both reached): pass@4 0.9 and 0.75, greedy 0.7 and 0.55
    assert "At equal samples (150" in table and "| gvmpp | 0.900 ± 0.000 | 0.700 ± 0.000 | 150 |" in table
    assert "| uniform | 0.750 ± 0.000 | 0.550 ± 0.000 | 200 |" in table


# ---------------------------------------------------------------- the sample-budget stop
def test_runs_stop_at_their_budget_in_generated_samples(tmp_path):
    """rollout.max_samples: the last epoch spends only what is left (dynamic sampling's refill rounds
    too), and the run stops with the epoch that reaches it — arms of a comparison end at the same spend."""
    import torch
    from lightning.pytorch import Trainer

    from gvmlit.algorithms import GRPO, RAFT, GroupSettings, Optimization, RolloutSettings
    from gvmlit.data import ArithmeticTask, RolloutDataModule
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler
    from gvmlit.verifiers import ArithmeticVerifier
    from helpers import ROOT

    common = dict(policy=PretrainedPolicy(str(ROOT / "models" / "arith-sft")), optim=Optimization(lr=1e-5),
                  sampler=HFSampler(max_new_tokens=40, progress=False), verifier=ArithmeticVerifier(progress=False))  # fmt: skip
    uniform = RAFT(rollout=RolloutSettings(samples_per_prompt=4, max_samples=60), **common)
    dapo = GRPO(rollout=RolloutSettings(samples_per_prompt=4, max_samples=60, max_rounds=4), groups=GroupSettings(dynamic_sampling=True), **common)
    for learner in (uniform, dapo):
        torch.manual_seed(0)
        data = RolloutDataModule(source=ArithmeticTask(num_train=60, num_val=0, seed=5), prompts_per_epoch=6, batch_size=16, prompt_template="{problem}=")
        trainer = Trainer(max_epochs=10, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, logger=False,
                          enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
        trainer.fit(learner, datamodule=data)
        assert learner.budget.training_samples == 60  # 24 + 24 + the 12 left (uniform); DAPO's rounds cut the same way
        assert trainer.current_epoch < 10
    assert uniform.epoch_result.epoch == 2 and uniform.epoch_result.metrics["budget/epoch_samples"] == 12


def test_curve_points_come_every_so_many_samples_and_at_the_budget():
    from types import SimpleNamespace

    from gvmlit.study.callbacks import NEVER, EvaluateEverySamples

    callback = EvaluateEverySamples(every=256)
    learner = SimpleNamespace(budget=SimpleNamespace(training_samples=0), rollout=SimpleNamespace(max_samples=1000))
    trainer = SimpleNamespace(check_val_every_n_epoch=1, sanity_checking=False, state=SimpleNamespace(fn="fit"))
    evaluated = []
    for spent in (100, 200, 300, 400, 500, 600, 900, 1000):  # an arm that spends 100 to 300 an epoch
        learner.budget.training_samples = spent
        callback.on_train_batch_start(trainer, learner, None, 0)
        if trainer.check_val_every_n_epoch == 1:
            evaluated.append(spent)
            callback.on_validation_end(trainer, learner)
        else:
            assert trainer.check_val_every_n_epoch == NEVER
    assert evaluated == [300, 600, 900, 1000]  # ≥ 256 apart, and at the budget


def _paired_regimes(gains: dict[str, list[float]]) -> list[dict]:
    """One held-out comparison per regime whose GVM++ − uniform ΔAUC is ``gains[regime]``, seed by seed."""
    from gvmlit.study.analysis import compare

    return [
        compare([_synthetic_run(arm, seed, 0.6 + (2 * d if arm == "gvmpp" else 0), regime=regime) for seed, d in enumerate(deltas) for arm in ("uniform", "gvmpp")])
        for regime, deltas in gains.items()
    ]  # fmt: skip


def test_the_decision_rule_applies_holm_over_the_regimes():
    from gvmlit.study.analysis import decision, paired_p_value
    from gvmlit.study.stats import paired_t_interval

    # regime a: a clear gain (smallest p: Holm's 98.3 %); b: a gain whose 95 % interval excludes 0 but whose
    # Holm interval (97.5 %) does not; c: nothing (largest p: 95 %). ΔAUC = (end difference) / 2 here.
    gains = {"a": [0.02, 0.03, 0.025, 0.035], "b": [0.01, 0.03, 0.01, 0.03], "c": [-0.01, 0.01, 0.0, 0.005]}
    assert paired_t_interval(gains["b"])[1] > 0 and paired_t_interval(gains["b"], 1 - 0.05 / 2)[1] < 0  # the case Holm changes
    text = "\n".join(decision(_paired_regimes(gains)))
    assert "- GVM++ beats uniform on a per generated sample" in text and "- GVM++ beats uniform on b per generated sample" in text
    assert "- no difference detected on c" in text and "at 97.5 %" in text
    assert "Overall: GVM++ is not shown to beat uniform on the held-out regimes (1 with L > 0, 0 with U < 0 after Holm)." in text
    gains["b"] = [0.02, 0.03, 0.025, 0.035]  # b as clear as a: two regimes with L > 0 after Holm
    assert "Overall: GVM++ beats uniform on the held-out regimes (2 with L > 0, 0 with U < 0 after Holm)." in "\n".join(decision(_paired_regimes(gains)))
    assert paired_p_value([0.01, 0.01, 0.01]) == 0.0 and paired_p_value([0.01, -0.01]) == 1.0


def test_the_named_peer_is_compared_and_raftpp_is_secondary(tmp_path):
    """GVM++ is compared with the peer PROTOCOL.md names (knapsack), not with whichever peer did best (that
    one is shown as description only); a held-out RAFT++ comparison is labelled secondary, with its own
    decision lines; run CPU time is a paired ratio to uniform's."""
    from gvmlit.study.analysis import analyze, compare

    ends = {"uniform": 0.60, "gvmpp": 0.62, "knapsack": 0.61, "greso": 0.70}
    for algorithm in ("grpo", "raftpp"):
        for seed in range(3):
            for arm, end in ends.items():
                run = _synthetic_run(arm, seed, end + 0.01 * seed * (arm == "gvmpp"), algorithm=algorithm)
                run["cpu_seconds"] = 100.0 * (1.2 if arm == "gvmpp" else 1.0)
                path = tmp_path / "runs" / "math_like" / algorithm / arm / f"seed{seed}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(run))
    grpo, raftpp = analyze(tmp_path / "runs", tmp_path / "out", plots=False)
    assert grpo["named_peer"] == "knapsack" and grpo["best_peer_by_mean"] == "greso"
    assert grpo["gvmpp_against_named_peer"]["mean"] == pytest.approx(0.01)  # ends differ by 0.01, 0.02, 0.03: ΔAUC = half their mean
    assert grpo["cpu_ratio_to_uniform"]["gvmpp"] == pytest.approx(1.2) and grpo["cpu_ratio_to_uniform"]["knapsack"] == pytest.approx(1.0)
    text = (tmp_path / "out" / "results.md").read_text()
    assert "GVM++ − knapsack (the peer PROTOCOL.md §4 names): +0.010" in text
    assert "Description only (picked after the runs): the peer with the highest mean ΔAUC here is greso" in text
    assert "**secondary (PROTOCOL amendment 1)**" in text and "Secondary (PROTOCOL amendment 1), the same rule for RAFT++. Decision rule (GVM++ − uniform, raftpp" in text
    assert raftpp["algorithm"] == "raftpp" and text.count("**primary comparison**") == 1
    # π0's level base is a mean over seeds: an arm run on fewer seeds does not move it
    runs = [_synthetic_run("uniform", seed, 0.6) for seed in range(3)] + [_synthetic_run("gvm", 0, 0.6)]
    for seed, run in enumerate(runs[:3]):
        run["curve"][0]["mean_at_k"] = 0.3 + 0.03 * seed
    runs[3]["curve"][0]["mean_at_k"] = 0.3
    assert compare(runs)["pi0_mean_at_k"] == pytest.approx(0.33)
    # the overview: one row per arm, one column per regime; GVM++'s ends differ from uniform's by 0.02, 0.03, 0.04
    assert "| gvmpp | +0.015 [+0.003, +0.027] (3) |" in text and "| greso | +0.050 [+0.050, +0.050] (3) |" in text
