"""Model files: the saved folder format, pickles, and what loading a damaged or crafted file does."""

from pathlib import Path

import joblib
import numpy as np
import pytest

from harmonic_seg import HarmonicSegmenter

DATA = Path(__file__).resolve().parent / "data"


# ------------------------------------------------------------- back compatibility
def _check_expected(seg):
    expected = np.load(DATA / "model_v1_expected.npz")
    labels = seg.predict([expected["image"]])[0]
    np.testing.assert_array_equal(labels, expected["labels"])
    assert labels.max() == 3  # a non-trivial label map
    embedding, fg_prob = seg.predict_embeddings([expected["image"]])[0]
    # float results may differ in the last bits between CPU instruction sets
    np.testing.assert_allclose(embedding, expected["embedding"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(fg_prob, expected["fg_prob"], rtol=0, atol=1e-5)


def test_model_folder_saved_by_version_1_loads_and_predicts_the_same():
    seg = HarmonicSegmenter.load(DATA / "model_v1")
    assert (seg.depth, seg.base_width, seg.guides_.n_guides_) == (2, 4, 4)
    _check_expected(seg)


def test_model_pickled_by_version_1_loads_and_predicts_the_same():
    seg = joblib.load(DATA / "model_v1.joblib")
    assert isinstance(seg, HarmonicSegmenter)
    _check_expected(seg)
