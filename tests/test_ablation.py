"""The ablation's curves: held-out accuracy against samples and against training seconds."""

from gvmlit.ablation import run_curves


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
