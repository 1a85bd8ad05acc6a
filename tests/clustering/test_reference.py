"""The clustering gives the label maps and scores it gave before it moved to harmonic_seg.clustering.

``tests/data/clustering_reference.npz`` was written by ``tests/data/make_clustering_reference.py`` with the
code of 0e9969b (clustering in ``harmonic_seg.nn`` and ``harmonic_seg._clustering``); every array must come
out the same, bit for bit, except the scores of a tuned window (another bandwidth or distance than the
configured ones): those are measured at the configured window since, and checked against
:func:`~harmonic_seg.postprocess.instance_scores` of the same instances.
"""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from harmonic_seg import HarmonicSegmenter  # noqa: E402
from harmonic_seg.clustering import EmbeddingClusterer, segment_embeddings  # noqa: E402
from harmonic_seg.postprocess import instance_scores  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
SETTINGS = [
    {},
    {"recovery_": "split"},
    {"recovery_": "split", "min_share_": 0.05, "min_size_": 20},
    {"recovery_": "split", "metric_": "l1", "bandwidth_": 1.2},
    {"recovery_": "split", "core_fraction_": 0.6},
    {"recovery_": "components", "min_size_": 10},
    {"recovery_": "mean_shift", "core_fraction_": 0.8, "fg_threshold_": 0.4},
    {"recovery_": "mean_shift", "bandwidth_": 0.3, "min_size_": 0},
]
CLUSTER_KWARGS = [
    {},
    {"recovery": "mean_shift"},
    {"recovery": "mean_shift", "split_components": True, "merge_small": True, "min_size": 30},
    {"recovery": "split", "metric": "l1", "bandwidth": 1.0, "min_share": 0.2},
    {"recovery": "split", "core_fraction": 0.7, "core_threshold": 0.6},
    {"recovery": "components", "min_size": 50},
]
N_IMAGES = 5


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(DATA / "clustering_reference.npz"))


def _images(ref):
    return [ref[f"image_{i}"] for i in range(N_IMAGES)]


def _check_scores(seg, images, labels, scores, expected):
    """The reference's scores where the fitted window is the configured one; elsewhere (a tuned window) the
    scores of the same instances at the configured window, as they are measured since."""
    clu = seg.clustering_
    if (clu.bandwidth_, clu.metric_) == (clu.bandwidth, clu.metric) or clu.recovery_ == "mean_shift":
        for sc, ex in zip(scores, expected):
            np.testing.assert_array_equal(sc, ex)
        return
    for (emb, prob), lab, sc, ex in zip(seg.predict_embeddings(images), labels, scores, expected):
        at_configured = instance_scores(lab, emb, clu.bandwidth, fg_prob=prob, metric=clu.metric)
        np.testing.assert_allclose(sc, at_configured, rtol=0, atol=1e-9)
    assert any(not np.array_equal(sc, ex) for sc, ex in zip(scores, expected))  # the window did change them


@pytest.mark.parametrize("s", range(len(SETTINGS)))
def test_predict_at_fitted_settings_is_unchanged(ref, s):
    seg = HarmonicSegmenter.load(DATA / "model_v1")
    for k, v in SETTINGS[s].items():
        setattr(seg, k, v)
    labels, scores = seg.predict(_images(ref), return_scores=True)
    for i in range(N_IMAGES):
        np.testing.assert_array_equal(labels[i], ref[f"setting_{s}_labels_{i}"])
    _check_scores(seg, _images(ref), labels, scores, [ref[f"setting_{s}_scores_{i}"] for i in range(N_IMAGES)])
    # the fitted clusterer alone, on the segmenter's predictions, gives the same
    emb, prob = seg.predict_embeddings(_images(ref)[:1])[0]
    lab, sc = seg.clustering_.segment(emb, prob)
    np.testing.assert_array_equal(lab, ref[f"setting_{s}_labels_0"])
    np.testing.assert_array_equal(sc, scores[0])


def _unchecked(row):
    return {k: v for k, v in row.items() if k not in ("check_sbd", "check_coco_ap")}


def test_tuning_chooses_and_predicts_the_same(ref):
    seg = HarmonicSegmenter.load(DATA / "model_v1")
    seg.optimize_postprocessing(_images(ref)[:3], [ref[f"truth_{i}"] for i in range(3)])
    tuned = json.loads(str(ref["tuned"]))
    assert {k: getattr(seg, k) for k in tuned} == tuned
    # the rows of the old tuning, and the two rows the floor check compared (keys added since)
    rows = json.loads(json.dumps(seg.tuning_results_))
    checked = [r for r in rows if "check_sbd" in r]
    assert len(checked) in (0, 2)
    assert [_unchecked(r) for r in rows] == json.loads(str(ref["tuning_results"]))
    labels, scores = seg.predict(_images(ref), return_scores=True)
    for i in range(N_IMAGES):
        np.testing.assert_array_equal(labels[i], ref[f"tuned_labels_{i}"])
    _check_scores(seg, _images(ref), labels, scores, [ref[f"tuned_scores_{i}"] for i in range(N_IMAGES)])


def test_tuning_the_clusterer_on_predictions_chooses_the_same(ref):
    # EmbeddingClusterer.tune on the segmenter's predictions is optimize_postprocessing
    seg = HarmonicSegmenter.load(DATA / "model_v1")
    preds = seg.predict_embeddings(_images(ref)[:3])
    clu = EmbeddingClusterer(**{k: v for k, v in seg.clustering_.get_params().items()}).tune(
        preds, [ref[f"truth_{i}"] for i in range(3)])
    tuned = json.loads(str(ref["tuned"]))
    assert {k: getattr(clu, k) for k in tuned} == tuned
    rows = json.loads(json.dumps(clu.tuning_results_))
    assert [_unchecked(r) for r in rows] == json.loads(str(ref["tuning_results"]))


@pytest.mark.parametrize("c", range(len(CLUSTER_KWARGS)))
def test_segment_embeddings_and_the_clusterer_give_cluster_embeddings_results(ref, c):
    emb, prob = ref["embedding"], ref["fg_prob"]
    kwargs = {"bandwidth": 0.5, **CLUSTER_KWARGS[c]}
    labels, scores = segment_embeddings(emb, prob, **kwargs)
    np.testing.assert_array_equal(labels, ref[f"cluster_{c}_labels"])
    np.testing.assert_array_equal(scores, ref[f"cluster_{c}_scores"])
    labels, scores = EmbeddingClusterer(**kwargs).segment(emb, prob)
    np.testing.assert_array_equal(labels, ref[f"cluster_{c}_labels"])
    np.testing.assert_array_equal(scores, ref[f"cluster_{c}_scores"])
