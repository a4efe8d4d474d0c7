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
