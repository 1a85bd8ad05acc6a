import os
from pathlib import Path

import numpy as np
import pytest

#: Real data sets live beside the checkout (../shared/data); tests that read
#: them skip when the folder is absent. HARMONIC_SEG_DATA overrides the place.
DATA_ROOT = Path(os.environ.get("HARMONIC_SEG_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def data_path(*parts):
    """Path under the shared data folder, or skip the test when it is absent."""
    p = DATA_ROOT.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available at {p}")
    return p


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def one_torch_thread():
    """torch on one thread during the test (small tensors: no thread start-up, repeatable timings)."""
    torch = pytest.importorskip("torch")
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
