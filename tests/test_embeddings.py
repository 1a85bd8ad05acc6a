import numpy as np
import pytest

from harmonic_seg.embeddings import embedding_map, instance_embeddings
from harmonic_seg.guides import random_guides


def _labels():
    lab = np.zeros((40, 60), dtype=np.int32)
    lab[2:12, 3:20] = 5
    lab[20:38, 30:58] = 2
    lab[15:18, 0:4] = 9
    return lab


def test_embedding_is_mean_of_guides_over_instance():
    g = random_guides(8, (40, 60), random_state=0)
    lab = _labels()
    maps = g.evaluate(lab.shape, dtype=np.float64)
    ids, emb = instance_embeddings(lab, g)
    assert ids.tolist() == [2, 5, 9]
    for i, k in enumerate(ids):
        np.testing.assert_allclose(emb[i], maps[:, lab == k].mean(axis=1), atol=1e-12)


def test_embedding_map_assigns_instance_embedding_and_zero_background():
    g = random_guides(8, (40, 60), random_state=0)
    lab = _labels()
    target, ids, emb = embedding_map(lab, g, return_embeddings=True)
    assert target.shape == (8, 40, 60) and target.dtype == np.float32
    assert np.all(target[:, lab == 0] == 0)
    for i, k in enumerate(ids):
        np.testing.assert_allclose(target[:, lab == k], np.repeat(emb[i][:, None], (lab == k).sum(), 1), atol=1e-6)


def test_origin_shifts_coordinates():
    g = random_guides(4, (40, 60), random_state=0)
    big = np.zeros((100, 100), dtype=int)
    big[50:90, 30:90] = _labels()
    _, e_big = instance_embeddings(big, g)
    _, e_win = instance_embeddings(_labels(), g, origin=(50, 30))
    np.testing.assert_allclose(e_big, e_win, atol=1e-12)


def test_empty_label_map_gives_no_instances():
    g = random_guides(4, (10, 10), random_state=0)
    ids, emb = instance_embeddings(np.zeros((10, 10), int), g)
    assert ids.size == 0 and emb.shape == (0, 4)
    assert np.all(embedding_map(np.zeros((10, 10), int), g) == 0)


@pytest.mark.parametrize(
    "labels, exc, match",
    [
        (np.zeros((4, 4), dtype=float), TypeError, "integer instance ids"),
        (-np.ones((4, 4), dtype=int), ValueError, "non-negative"),
        (np.zeros((2, 4, 4), dtype=int), ValueError, "2-D label map"),
        (np.full((4, 4), 2**63, dtype=np.uint64), ValueError, "relabel"),
    ],
)
def test_bad_label_maps(labels, exc, match):
    g = random_guides(4, (10, 10), random_state=0)
    with pytest.raises(exc, match=match):
        embedding_map(labels, g)


def test_bad_guides_argument():
    with pytest.raises(TypeError, match="guides must be a GuideFunctions"):
        embedding_map(np.zeros((4, 4), int), np.zeros((4, 2)))
