"""Figures people would rather look at than read: allocation scatter, ablation curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures go to TensorBoard and PNG files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def allocation_figure(acceptance_rate, samples, epoch: int):
    """n_i against the estimated acceptance rate p̂_i, one point per prompt."""
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.scatter(np.asarray(acceptance_rate), np.asarray(samples), s=12, alpha=0.7)
    ax.set_xlabel("estimated acceptance rate p̂")
    ax.set_ylabel("samples allocated n")
    ax.set_xlim(-0.03, 1.03)
    ax.set_title(f"epoch {epoch}")
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> None:
    """Write ``fig`` to ``path`` (PNG, 110 dpi) and free it."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
