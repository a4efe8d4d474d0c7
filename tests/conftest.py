import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from gvmlit.policy import TinyCharPolicy

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_policy():
    """A real tiny Llama (hidden 64, 2 layers) with a character-level tokenizer."""
    model, tokenizer = TinyCharPolicy(hidden_size=64, num_layers=2, num_heads=4, max_length=128, seed=0).load()
    model.eval()
    return model, tokenizer
