"""Every table and plot of the study, rebuilt from the run files alone (no rerun), in seconds.

    python bench/study.py analyze [--runs docs/study/runs] [--out docs/study/results]

Per regime × algorithm, from ``<runs>/<regime>/<algorithm>/<arm>/seed<k>.json`` (gvmlit.study.runs):

- **the primary comparison** (docs/study/PROTOCOL.md): GVM++ minus uniform, GRPO, paired ΔAUC of mean@k
  against generated samples, 0 … B (the regime's budget), with a paired-t and a BCa bootstrap 95 %
  interval over the seeds both arms ran;
- secondary, and labelled so: every other arm minus uniform, GVM++ minus the peer PROTOCOL.md names
  (``NAMED_PEER``; the best peer by mean ΔAUC is shown beside it, as description only); the same
  for greedy accuracy; samples to reach each pre-registered level (π0's mean@k + 0.05, + 0.10, + 0.15,
  interpolated between evaluations) with how many runs never reached it; accuracy at equal final spend
  (mean@k and greedy read on each curve at B); the final test (512 problems, mean@8 and greedy) with the
  spend it was taken at; uniform's gain over the last quarter of the budget; what each arm did.

Writes ``<out>/results.md`` (the tables), ``<out>/results.json`` (every number in them),
``<out>/<regime>_<algorithm>.png`` (mean@k against generated samples, one line per arm, mean over seeds
with a ±1 standard error band) and ``<out>/delta_auc.png`` (ΔAUC against uniform with both intervals).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from gvmlit.study.stats import (
    area_under_curve,
    bca_interval,
    curve_value,
    first_reaching,
    paired_t_interval,
    t_cdf,
)

#: pre-registered accuracy levels: π0's mean@k (mean over the comparison's seeds) plus these
LEVEL_GAINS = (0.05, 0.10, 0.15)
#: the peers GVM++ is compared with
PEERS = ("zero_variance_filter", "gvm", "knapsack", "greso", "dapo", "pilot_commit")
#: the peer of the secondary GVM++-vs-peer comparison, named a priori (docs/study/PROTOCOL.md §4)
NAMED_PEER = "knapsack"
ARM_ORDER = ("uniform", "gvmpp", "gvmpp_stop", "zero_variance_filter", "gvm", "knapsack", "greso", "dapo", "pilot_commit")


def load_runs(root: Path) -> list[dict]:
    """Every run file under ``root`` (``<regime>/<algorithm>/<arm>/seed<k>.json``)."""
    return [json.loads(path.read_text()) for path in sorted(Path(root).glob("*/*/*/seed*.json"))]


def points(run: dict, key: str = "mean_at_k") -> list[tuple[float, float]]:
    return [(p["samples"], p[key]) for p in run["curve"]]


def run_summary(run: dict, budget: float, levels: list[float]) -> dict:
    """What one run contributes to the tables."""
    curve, greedy = points(run), points(run, "greedy")
    return {
        "seed": run["seed"],
        "auc": area_under_curve(curve, budget),
        "auc_greedy": area_under_curve(greedy, budget),
        "at_budget": curve_value(curve, budget),
        "greedy_at_budget": curve_value(greedy, budget),
        "last_quarter_gain": curve_value(curve, budget) - curve_value(curve, 0.75 * budget),
        "to_level": [first_reaching(curve, level) for level in levels],
        "final_samples": run["final"]["samples"],
        "final_tokens": run["final"]["tokens"],
        "wall_s": run["final"].get("wall_s", float("nan")),
        "test_mean": run["test"]["mean_at_k"],
        "test_greedy": run["test"]["greedy"],
        "test_samples": run["test"].get("samples", run["final"]["samples"]),
        "estimation_share": run.get("behaviour", {}).get("estimation_share", float("nan")),
        "allocator_share": run.get("behaviour", {}).get("allocator_compute_share", float("nan")),
        "cpu_seconds": run.get("cpu_seconds", float("nan")),
        "informative_share": run.get("behaviour", {}).get("informative_sample_share", float("nan")),
        "revisit_rate": run.get("revisit", {}).get("revisit_rate", float("nan")),
    }


def paired(summaries: dict[str, dict[int, dict]], arm: str, reference: str, key: str = "auc") -> dict | None:
    """Paired differences ``arm`` − ``reference`` of ``key`` over the seeds both ran, with intervals."""
    if arm not in summaries or reference not in summaries:
        return None
    seeds = sorted(set(summaries[arm]) & set(summaries[reference]))
    if not seeds:
        return None
    differences = [summaries[arm][s][key] - summaries[reference][s][key] for s in seeds]
    mean, t_low, t_high = paired_t_interval(differences)
    _, b_low, b_high = bca_interval(differences)
    return {"arm": arm, "reference": reference, "metric": key, "seeds": seeds, "differences": differences,
            "mean": mean, "t_interval": [t_low, t_high], "bca_interval": [b_low, b_high]}  # fmt: skip


def cpu_ratio(summaries: dict[str, dict[int, dict]], arm: str) -> float:
    """A run's whole CPU time (one thread: its wall time on an idle core) over uniform's of the same seed,
    geometric mean over the seeds both ran (nan without a pair)."""
    seeds = sorted(set(summaries.get(arm, {})) & set(summaries.get("uniform", {})))
    ratios = [summaries[arm][s]["cpu_seconds"] / summaries["uniform"][s]["cpu_seconds"] for s in seeds]
    ratios = [r for r in ratios if np.isfinite(r) and r > 0]
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan")


def compare(runs: list[dict]) -> dict:
    """All numbers of one regime × algorithm."""
    budget = float(runs[0]["budget"])
    by_seed: dict[int, list[float]] = defaultdict(list)  # π0 is the same for every arm of a seed: weigh seeds, not runs,
    for r in runs:  # so the levels do not move when an arm with fewer seeds is added
        by_seed[r["seed"]].append(r["curve"][0]["mean_at_k"])
    start = float(np.mean([np.mean(values) for values in by_seed.values()]))
    levels = [round(start + gain, 4) for gain in LEVEL_GAINS]
    summaries: dict[str, dict[int, dict]] = defaultdict(dict)
    for run in runs:
        summaries[run["arm"]][run["seed"]] = run_summary(run, budget, levels)
    arms = sorted(summaries, key=lambda a: (ARM_ORDER.index(a) if a in ARM_ORDER else len(ARM_ORDER), a))
    against_uniform = {arm: paired(summaries, arm, "uniform") for arm in arms if arm != "uniform"}
    greedy_against_uniform = {arm: paired(summaries, arm, "uniform", "auc_greedy") for arm in arms if arm != "uniform"}
    peers = [a for a in arms if a in PEERS and against_uniform.get(a)]
    best = max(peers, key=lambda a: against_uniform[a]["mean"]) if peers else None
    cost = {arm: cpu_ratio(summaries, arm) for arm in arms if arm != "uniform"}
    return {
        "regime": runs[0]["regime"], "algorithm": runs[0]["algorithm"], "split": runs[0]["split"], "budget": budget,
        "pi0_mean_at_k": start, "levels": levels, "arms": arms,
        "summaries": {arm: [summaries[arm][s] for s in sorted(summaries[arm])] for arm in arms},
        "against_uniform": against_uniform, "greedy_against_uniform": greedy_against_uniform,
        "named_peer": NAMED_PEER, "gvmpp_against_named_peer": paired(summaries, "gvmpp", NAMED_PEER),
        "best_peer_by_mean": best, "gvmpp_against_best_peer": paired(summaries, "gvmpp", best) if best else None,
        "cpu_ratio_to_uniform": cost,
        "gvmpp_stop_against_gvmpp": paired(summaries, "gvmpp_stop", "gvmpp"),
    }  # fmt: skip


def _bounds(low: float, high: float, digits: int = 3) -> str:
    """``[low, high]`` with signs, or ``[n/a]`` for an interval that could not be computed."""
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]" if np.isfinite(low) else "[n/a]"


def _number(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, or – when there is none (nan)."""
    return f"{value:.{digits}f}" if np.isfinite(value) else "–"


def _interval(result: dict | None, digits: int = 3) -> str:
    if not result:
        return "–"
    return f"{result['mean']:+.{digits}f} t{_bounds(*result['t_interval'], digits)} BCa{_bounds(*result['bca_interval'], digits)}"


def _nanmean(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _share(summaries: list[dict], key: str, digits: int) -> str:
    return _number(_nanmean([x[key] for x in summaries]), digits)


def _mean_sd(values, digits: int = 3) -> str:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "–"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.{digits}f}"


def table(comparison: dict) -> str:
    """The Markdown tables of one regime × algorithm."""
    c = comparison
    budget = c["budget"]
    head = f"### {c['regime']} ({c['split']}), {c['algorithm']}: budget {budget:.0f} generated samples; π0 mean@k {c['pi0_mean_at_k']:.3f}"
    lines = [head, ""]
    primary = c["against_uniform"].get("gvmpp")
    label = ("primary comparison" if c["algorithm"] == "grpo" and c["split"] == "heldout" else
             "secondary (PROTOCOL amendment 1)" if c["split"] == "heldout" else "GVM++ − uniform (tuning regime: not the primary comparison)")  # fmt: skip
    lines.append(f"**{label}**: ΔAUC of mean@k, GVM++ − uniform = {_interval(primary)} over {len(primary['seeds']) if primary else 0} paired seeds.")
    uniform = c["summaries"].get("uniform", [])
    if uniform:
        gains = [s["last_quarter_gain"] for s in uniform]
        mean, low, high = paired_t_interval(gains)
        lines.append(f"Uniform's gain over the last quarter of the budget: {mean:+.3f} (t 95 % [{low:+.3f}, {high:+.3f}]).")
    lines += ["", "| arm | seeds | AUC mean@k | ΔAUC vs uniform (95 %) | ΔAUC greedy vs uniform | mean@k at B | greedy at B | test mean@8 | test greedy | spend at test (×B) | tokens |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm in c["arms"]:
        s = c["summaries"][arm]
        spend = np.mean([x["test_samples"] for x in s]) / budget
        lines.append(
            f"| {arm} | {len(s)} | {_mean_sd([x['auc'] for x in s])} | {_interval(c['against_uniform'].get(arm))} | "
            f"{_interval(c['greedy_against_uniform'].get(arm))} | {_mean_sd([x['at_budget'] for x in s])} | {_mean_sd([x['greedy_at_budget'] for x in s])} | "
            f"{_mean_sd([x['test_mean'] for x in s])} | {_mean_sd([x['test_greedy'] for x in s])} | {spend:.3f} | {np.mean([x['final_tokens'] for x in s]):.0f} |"
        )  # fmt: skip
    lines += ["", "Secondary: generated samples to first reach each pre-registered level (mean over the runs that reached it; never = runs that did not):", "",
              "| arm | " + " | ".join(f"to {lv:.3f} (π0 + {g:.2f})" for lv, g in zip(c["levels"], LEVEL_GAINS))
              + " | allocator's own computation, share of epoch time | pilot rounds, share of epoch time (pilots kept and trained on, except gvm) | run CPU time ÷ uniform's | informative sample share | revisit rate |",
              "|---|" + "---|" * (len(c["levels"]) + 5)]  # fmt: skip
    for arm in c["arms"]:
        s = c["summaries"][arm]
        cells = []
        for k in range(len(c["levels"])):
            reached = [x["to_level"][k] for x in s if np.isfinite(x["to_level"][k])]
            never = len(s) - len(reached)
            cells.append((f"{np.mean(reached):.0f}" if reached else "–") + f" (never {never}/{len(s)})")
        cost = _number(c["cpu_ratio_to_uniform"].get(arm, 1.0), 2)
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {_share(s, 'allocator_share', 4)} | {_share(s, 'estimation_share', 3)} | "
                     f"{cost} | {_nanmean([x['informative_share'] for x in s]):.2f} | {_nanmean([x['revisit_rate'] for x in s]):.2f} |")  # fmt: skip
    if c["gvmpp_against_named_peer"]:
        lines += ["", f"Secondary: GVM++ − {c['named_peer']} (the peer PROTOCOL.md §4 names): {_interval(c['gvmpp_against_named_peer'])}."]
    best = c["best_peer_by_mean"]
    if best and best != c["named_peer"]:
        lines.append(f"Description only (picked after the runs): the peer with the highest mean ΔAUC here is {best}; GVM++ − {best}: {_interval(c['gvmpp_against_best_peer'])}.")
    if c.get("gvmpp_stop_against_gvmpp"):
        lines.append(f"GVM++ without re-spending (gvmpp_stop) − GVM++: {_interval(c['gvmpp_stop_against_gvmpp'])}.")
    return "\n".join(lines) + "\n"


def overview(comparisons: list[dict], split: str = "heldout") -> list[str]:
    """One table per algorithm: rows the arms, columns the regimes of ``split``, each cell ΔAUC of mean@k
    against uniform with its paired-t 95 % interval and the number of paired seeds."""
    lines = []
    for algorithm in sorted({c["algorithm"] for c in comparisons if c["split"] == split}):
        group = [c for c in comparisons if c["split"] == split and c["algorithm"] == algorithm]
        arms = sorted({a for c in group for a in c["arms"] if a != "uniform"}, key=lambda a: (ARM_ORDER.index(a) if a in ARM_ORDER else len(ARM_ORDER), a))
        lines += [f"Every arm − uniform, {algorithm}, {split} regimes: ΔAUC of mean@k [paired-t 95 %] (n paired seeds)"
                  + (" — GVM++'s row is the primary comparison, every other row secondary:" if algorithm == "grpo" and split == "heldout" else ", secondary:"), "",
                  "| arm | " + " | ".join(c["regime"] for c in group) + " |", "|---|" + "---|" * len(group)]  # fmt: skip
        for arm in arms:
            cells = []
            for c in group:
                r = c["against_uniform"].get(arm)
                if not r:
                    cells.append("–")
                    continue
                cells.append(f"{r['mean']:+.3f} {_bounds(*r['t_interval'])} ({len(r['seeds'])})")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_curves(comparison: dict, runs: list[dict], path: Path) -> None:
    """:func:`curves_figure`, written to ``path``."""
    from gvmlit.plots import save_figure

    save_figure(curves_figure(comparison, runs), path)


def curves_figure(comparison: dict, runs: list[dict]):
    """mean@k against generated samples, one line per arm (mean over seeds, ±1 standard error band)."""
    from gvmlit.plots import plt

    budget = comparison["budget"]
    grid = np.linspace(0, budget, 81)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for arm in comparison["arms"]:
        curves = [points(r) for r in runs if r["arm"] == arm]
        values = np.array([[curve_value(c, x) for x in grid] for c in curves])
        mean = values.mean(0)
        error = values.std(0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
        style = "-" if arm in ("uniform", "gvmpp") else "--"
        line = ax.plot(grid, mean, style, lw=2.2 if arm in ("uniform", "gvmpp") else 1.3, label=f"{arm} ({len(curves)})")[0]
        ax.fill_between(grid, mean - error, mean + error, color=line.get_color(), alpha=0.12)
    ax.set_xlim(0, budget)
    ax.set_xlabel("generated training samples (pilots, refills, dropped groups included)")
    ax.set_ylabel(f"held-out mean@{runs[0].get('curve_k', 4)}")
    ax.set_title(f"{comparison['regime']} ({comparison['split']}), {comparison['algorithm']}: mean over seeds ± 1 s.e.")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="arm (seeds)", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_deltas(comparisons: list[dict], path: Path) -> None:
    """:func:`deltas_figure`, written to ``path`` (nothing when no arm has a comparison)."""
    from gvmlit.plots import save_figure

    if (fig := deltas_figure(comparisons)) is not None:
        save_figure(fig, path)


def deltas_figure(comparisons: list[dict]):
    """ΔAUC of mean@k against uniform, every arm and regime, with the paired-t (thick) and BCa (thin) intervals."""
    from gvmlit.plots import plt

    rows = [(f"{c['regime']}/{c['algorithm']}", arm, r) for c in comparisons for arm, r in c["against_uniform"].items() if r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(rows) + 1.8))
    for y, (group, arm, r) in enumerate(rows):
        color = "C3" if arm == "gvmpp" else "C0"
        if np.isfinite(r["bca_interval"][0]):
            ax.plot(r["bca_interval"], [y, y], color=color, lw=1)
        if np.isfinite(r["t_interval"][0]):
            ax.plot(r["t_interval"], [y, y], color=color, lw=3, alpha=0.5)
        ax.plot([r["mean"]], [y], "o", color=color, ms=4)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{group}: {arm}" for group, arm, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ΔAUC of mean@k against uniform, paired over seeds\n(thick: paired-t 95 %, thin: BCa 95 %)")
    ax.set_title("Every arm against uniform, per generated sample")
    ax.set_ylabel("regime/algorithm: arm")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def paired_p_value(differences) -> float:
    """Two-sided paired-t p-value of the mean of ``differences`` against 0 (nan with fewer than 2)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return float("nan")
    sd = float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if d.mean() != 0 else 1.0
    t = float(d.mean()) / (sd / np.sqrt(d.size))
    return 2 * (1 - t_cdf(abs(t), d.size - 1))


def decision(comparisons: list[dict], arm: str = "gvmpp", algorithm: str = "grpo", label: str = "") -> list[str]:
    """The pre-registered decision rule (docs/study/PROTOCOL.md §2) on the held-out regimes: per regime
    "beats", "is worse than" or "no difference detected" from the paired-t 95 % interval of ΔAUC, then the
    overall claim with Holm's correction over the regimes (the smallest p-value's interval at 1 − α/m, the
    next at 1 − α/(m − 1), …): at least two regimes with L > 0 and none with U < 0."""
    rows = [(c["regime"], c["against_uniform"].get(arm)) for c in comparisons if c["split"] == "heldout" and c["algorithm"] == algorithm]
    rows = [(regime, r) for regime, r in rows if r and len(r["differences"]) >= 2]
    if not rows:
        return []
    name = {"gvmpp": "GVM++"}.get(arm, arm)
    lines = [f"{label}Decision rule ({name} − uniform, {algorithm}, ΔAUC of mean@k, paired-t 95 %):", ""]
    for regime, r in rows:
        low, high = r["t_interval"]
        verdict = (f"{name} beats uniform on {regime} per generated sample" if low > 0 else
                   f"{name} is worse than uniform on {regime}" if high < 0 else f"no difference detected on {regime}")  # fmt: skip
        lines.append(f"- {verdict}: ΔAUC = {r['mean']:+.3f} [{low:+.3f}, {high:+.3f}] (n = {len(r['differences'])} paired seeds).")
    ordered = sorted(rows, key=lambda row: paired_p_value(row[1]["differences"]))
    holm, m = [], len(ordered)
    for k, (regime, r) in enumerate(ordered):
        confidence = 1 - 0.05 / (m - k)
        _, low, high = paired_t_interval(r["differences"], confidence)
        holm.append((regime, low, high, confidence))
    wins = [h for h in holm if h[1] > 0]
    losses = [h for h in holm if h[2] < 0]
    overall = len(wins) >= 2 and not losses
    lines += ["", "Holm over the regimes: " + "; ".join(f"{g} [{lo:+.3f}, {hi:+.3f}] at {100 * c:.1f} %" for g, lo, hi, c in holm) + "."]
    lines.append(f"Overall: {name} {'beats' if overall else 'is not shown to beat'} uniform on the held-out regimes "
                 f"({len(wins)} with L > 0, {len(losses)} with U < 0 after Holm).")  # fmt: skip
    return lines + [""]


def analyze(runs_root: Path | list[Path], out: Path, plots: bool = True) -> list[dict]:
    """Rebuild ``results.md``, ``results.json`` and the plots from the run files under ``runs_root`` (one
    folder or several, pooled: e.g. the study's runs with the design variants of docs/study/tuning/)."""
    roots = [Path(runs_root)] if isinstance(runs_root, (str, Path)) else [Path(r) for r in runs_root]
    runs = [run for root in roots for run in load_runs(root)]
    if not runs:
        raise SystemExit(f"no run files under {', '.join(map(str, roots))}")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["split"], run["regime"], run["algorithm"])].append(run)
    comparisons = [compare(group) for _, group in sorted(groups.items(), key=lambda kv: (kv[0][0] != "heldout", kv[0][1], kv[0][2]))]
    out.mkdir(parents=True, exist_ok=True)
    where = ", ".join(f"`{root.name}/`" for root in roots)
    text = ["# Study results", "", f"Rebuilt by `python bench/study.py analyze` from {len(runs)} run files under {where}.", ""]
    text += decision(comparisons)
    text += decision(comparisons, algorithm="raftpp", label="Secondary (PROTOCOL amendment 1), the same rule for RAFT++. ")
    text += overview(comparisons)
    text += [table(c) for c in comparisons]
    (out / "results.md").write_text("\n".join(text))
    (out / "results.json").write_text(json.dumps(comparisons, indent=1, default=float))
    if plots:
        for c in comparisons:
            plot_curves(c, groups[(c["split"], c["regime"], c["algorithm"])], out / f"{c['regime']}_{c['algorithm']}.png")
        plot_deltas(comparisons, out / "delta_auc.png")
    print(f"wrote {out / 'results.md'}, {out / 'results.json'} and {len(comparisons) + 1 if plots else 0} plots")
    return comparisons
