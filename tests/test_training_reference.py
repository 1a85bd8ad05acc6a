"""Short trainings with a fixed seed give the weights and losses they gave before the training set was
validated once at the public entry and the trainer's loop was split into steps and callbacks.

``tests/data/training_reference.npz`` was written by ``tests/data/make_training_reference.py`` with the
code of 6dc3519. On the platform that wrote it (torch version and CPU instructions recorded in the file)
every weight and loss must come out the same, bit for bit; elsewhere float32 kernels may round
differently, and the comparison allows for that.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

DATA = Path(__file__).resolve().parent / "data"


def _maker():
    spec = importlib.util.spec_from_file_location("make_training_reference", DATA / "make_training_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(DATA / "training_reference.npz"))


@pytest.mark.parametrize("name", list(MAKER.CASES))
def test_training_is_unchanged(ref, name):
    weights, losses = MAKER.run_case(name)
    same_platform = json.loads(str(ref["platform"])) == MAKER.platform()
    expected = {k.split("/weights/", 1)[1]: v for k, v in ref.items() if k.startswith(f"{name}/weights/")}
    assert sorted(weights) == sorted(expected)
    pairs = [(f"{name}/losses", losses, ref[f"{name}/losses"])] + [(k, weights[k], expected[k]) for k in expected]
    for key, got, want in pairs:
        if same_platform:
            np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5, err_msg=key)
