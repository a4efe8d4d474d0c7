"""Figures people read instead of tables: rendered for real, titles, labels and legends inside the frame."""

import numpy as np

from gvmlit.plots import allocation_figure, plt
from helpers import assert_readable


def test_the_allocation_scatter_is_readable():
    rng = np.random.default_rng(0)
    figure = allocation_figure(rng.random(64), rng.integers(0, 24, 64), epoch=3)
    try:
        assert_readable(figure)
    finally:
        plt.close(figure)


def test_the_ablation_plot_is_readable_and_titled_without_a_title():
    from gvmlit.ablation import figure

    line = lambda end: [(s, 0.4 + (end - 0.4) * s / 1000) for s in range(0, 1001, 250)]  # noqa: E731
    results = [{"arm": arm, "seed": seed, "curves": {"samples": line(end + 0.01 * seed)}} for arm, end in (("uniform", 0.6), ("gvmpp", 0.65)) for seed in range(3)]
    fig = figure(results, "val/mean@4")
    try:
        assert fig.axes[0].get_title() == "uniform vs gvmpp: val/mean@4 per generated sample"
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["uniform (3 seeds)", "gvmpp (3 seeds)"]
        assert_readable(fig)
    finally:
        plt.close(fig)


def test_the_study_plots_are_readable():
    from gvmlit.study.analysis import compare, curves_figure, deltas_figure
    from test_ablation import _synthetic_run

    runs = [_synthetic_run(arm, seed, end + 0.01 * seed) for arm, end in (("uniform", 0.6), ("gvmpp", 0.65), ("knapsack", 0.62)) for seed in range(3)]
    comparison = compare(runs)
    for fig in (curves_figure(comparison, runs), deltas_figure([comparison])):
        try:
            assert_readable(fig)
        finally:
            plt.close(fig)
