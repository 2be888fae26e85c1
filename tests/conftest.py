import os

import pytest
import torch

# Tests are small; one intra-op thread keeps them from fighting over the machine's cores.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
