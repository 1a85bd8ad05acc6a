"""Tests of harmonic_seg.postprocess on hand-made label maps."""

import numpy as np
import pytest

from harmonic_seg.postprocess import (
    instance_scores,
    merge_small_instances,
    relabel_sequential,
    remove_small_instances,
    split_into_components,
)


def test_remove_small_instances():
    lab = np.array([[1, 1, 0, 2], [1, 1, 0, 0], [0, 0, 3, 3]])
    out = remove_small_instances(lab, 2)
    np.testing.assert_array_equal(out, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 3, 3]])
    assert out.dtype == lab.dtype and lab[0, 3] == 2  # input untouched
    np.testing.assert_array_equal(remove_small_instances(lab, 0), lab)
    np.testing.assert_array_equal(remove_small_instances(lab, 5), np.zeros_like(lab))
    with pytest.raises(ValueError, match="min_size"):
        remove_small_instances(lab, -1)
    with pytest.raises(TypeError, match="labels"):
        remove_small_instances(lab.astype(float) + 0.5, 2)


def test_merge_small_instances():
    # 1 and 3 are kept; 2 (a 3-pixel sliver between them) is merged; 4 touches nothing and is removed;
    # 5 touches only 2, so it reaches a kept instance through it
    lab = np.zeros((5, 11), dtype=np.int32)
    lab[1:4, 0:5] = 1
    lab[1:4, 5] = 2
    lab[1:4, 6:9] = 3
    lab[0, 10] = 4
    lab[4, 5] = 5
    out = merge_small_instances(lab, 4)
    assert out.dtype == lab.dtype and lab[1, 5] == 2  # input untouched
    assert set(np.unique(out)) == {0, 1, 3}
    np.testing.assert_array_equal(out > 0, (lab > 0) & (lab != 4))
    assert out[4, 5] == out[3, 5] and out[1, 5] in (1, 3)
    np.testing.assert_array_equal(out[lab == 1], 1)
    np.testing.assert_array_equal(out[lab == 3], 3)
    np.testing.assert_array_equal(merge_small_instances(lab, 1), lab)
    # nothing kept: all removed, as remove_small_instances does
    np.testing.assert_array_equal(merge_small_instances(lab, 100), np.zeros_like(lab))
    with pytest.raises(ValueError, match="min_size"):
        merge_small_instances(lab, -1)


def test_split_into_components():
    lab = np.array(
        [
            [5, 5, 0, 5],
            [0, 0, 0, 5],
            [7, 2, 2, 0],
            [0, 0, 0, 2],
        ]
    )
    out = split_into_components(lab)
    assert out.dtype == np.int32
    # id 5 in two blobs -> two ids; touching 7 and 2 stay apart; the diagonal 2 is a third piece
    assert len(np.unique(out[out > 0])) == 5
    assert out[0, 0] == out[0, 1] and out[0, 0] != out[0, 3]
    assert out[2, 0] != out[2, 1] and out[2, 1] == out[2, 2] and out[3, 3] != out[2, 2]
    np.testing.assert_array_equal(out > 0, lab > 0)
    out8 = split_into_components(lab, connectivity=2)
    assert out8[3, 3] == out8[2, 2]  # diagonal neighbours with 8-connectivity
    with pytest.raises(ValueError, match="connectivity"):
        split_into_components(lab, connectivity=3)


def test_relabel_sequential():
    lab = np.array([[0, 9, 9], [4, 0, 20]])
    out, ids = relabel_sequential(lab, return_ids=True)
    np.testing.assert_array_equal(out, [[0, 2, 2], [1, 0, 3]])
    np.testing.assert_array_equal(ids, [4, 9, 20])
    assert out.dtype == np.int32
    empty, ids = relabel_sequential(np.zeros((3, 3), int), return_ids=True)
    assert not empty.any() and ids.size == 0


def test_instance_scores_by_hand():
    lab = np.array([[1, 1, 0], [2, 2, 2]])
    emb = np.zeros((2, 2, 3), dtype=np.float32)
    emb[0] = [[0.0, 0.0, 9.0], [1.0, 1.0, 3.0]]  # pixel (1, 2) is 2 away from mode 1
    centers = np.array([[0.0, 0.0], [1.0, 0.0]])
    s = instance_scores(lab, emb, 0.5, centers=centers)
    np.testing.assert_allclose(s, [1.0, 2 / 3])
    prob = np.array([[1.0, 0.5, 0.0], [0.9, 0.9, 0.6]])
    s = instance_scores(lab, emb, 0.5, centers=centers, fg_prob=prob)
    np.testing.assert_allclose(s, [0.75, 0.8 * 2 / 3])
    # no centres: the instance means; instance 2 has mean (5/3, 0), its pixels are 2/3, 2/3 and 4/3 away
    s = instance_scores(lab, emb, 0.7, metric="l1")
    np.testing.assert_allclose(s, [1.0, 2 / 3])


def test_instance_scores_empty_and_errors():
    emb = np.zeros((3, 4, 4))
    assert instance_scores(np.zeros((4, 4), int), emb, 0.5).shape == (0,)
    lab = np.ones((4, 4), int)
    with pytest.raises(ValueError, match="embedding"):
        instance_scores(lab, np.zeros((3, 4, 5)), 0.5)
    bad = emb.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="embedding"):
        instance_scores(lab, bad, 0.5)
    with pytest.raises(ValueError, match="bandwidth"):
        instance_scores(lab, emb, 0.0)
    with pytest.raises(ValueError, match="centers"):
        instance_scores(lab, emb, 0.5, centers=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="fg_prob"):
        instance_scores(lab, emb, 0.5, fg_prob=np.ones((3, 3)))
    with pytest.raises(ValueError, match="metric"):
        instance_scores(lab, emb, 0.5, metric="cosine")
