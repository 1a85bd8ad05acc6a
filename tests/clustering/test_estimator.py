"""Tests of harmonic_seg.clustering.EmbeddingClusterer and segment_embeddings, alone and nested in
HarmonicSegmenter (``clustering=``), and of the deprecated import paths."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from harmonic_seg.clustering import EmbeddingClusterer, segment_embeddings

from ._scenes import EPS


def _two_blobs():
    emb = np.zeros((2, 16, 16), np.float32)
    emb[0, :, 8:] = 3.0
    prob = np.full((16, 16), 0.9, np.float32)
    prob[:2] = 0.1
    return emb, prob


def test_init_only_stores_and_clone_keeps_parameters():
    clu = EmbeddingClusterer(bandwidth=0.7, min_size=3, recovery="components", fg_threshold=0.6)
    assert clu.get_params()["bandwidth"] == 0.7 and clu.get_params()["recovery"] == "components"
    assert not [k for k in vars(clu) if k.endswith("_")]
    assert clone(clu).get_params() == clu.get_params()
    assert set(EmbeddingClusterer._parameter_constraints) == set(clu.get_params())


@pytest.mark.parametrize("bad, match", [
    ({"bandwidth": 0}, "bandwidth"), ({"metric": "cosine"}, "metric"), ({"min_size": -1}, "min_size"),
    ({"core_fraction": 1.5}, "core_fraction"), ({"recovery": "watershed"}, "recovery"),
    ({"min_share": 2}, "min_share"), ({"fg_threshold": 1.0}, "fg_threshold"),
])
def test_invalid_parameters_are_refused_naming_them(scene, bad, match):
    _, emb = scene
    with pytest.raises(ValueError, match=match):
        EmbeddingClusterer(**bad).segment(emb, None, foreground=np.ones(emb.shape[1:], bool))
    with pytest.raises(ValueError, match=match):
        segment_embeddings(emb, None, foreground=np.ones(emb.shape[1:], bool), **bad)


def test_segment_is_segment_embeddings_and_uses_the_fitted_values(scene):
    pytest.importorskip("torch")
    labels, emb = scene
    prob = np.where(labels > 0, 0.9, 0.1).astype(np.float32)
    a = segment_embeddings(emb, prob, bandwidth=EPS, min_size=5)
    b = EmbeddingClusterer(bandwidth=EPS, min_size=5).segment(emb, prob)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].max() == labels.max()
    clu = EmbeddingClusterer(bandwidth=EPS).fit()
    assert (clu.bandwidth_, clu.recovery_, clu.min_share_, clu.tuning_results_) == (EPS, "split", 0.1, [])
    clu.recovery_, clu.min_size_ = "components", 0
    np.testing.assert_array_equal(clu.segment(emb, prob)[0], segment_embeddings(emb, prob, recovery="components",
                                                                                min_size=0)[0])
    # a known foreground replaces the threshold
    fg = labels == 1
    lab, _ = EmbeddingClusterer(bandwidth=EPS).segment(emb, prob, foreground=fg)
    assert set(np.unique(lab)) == {0, 1} and (lab[fg] == 1).all()
    with pytest.raises(ValueError, match="fg_prob is None"):
        segment_embeddings(emb, None)


def test_the_same_instances_score_the_same_whichever_window_and_recovery_found_them():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 0.2, (2, 24, 24)).astype(np.float32)  # a loose cluster: the window changes the score
    prob = np.full((24, 24), 0.9, np.float32)
    prob[:, 11:13] = 0.1  # two separate components, one mode each
    emb[0, :, 12:] += 3.0
    floor = EmbeddingClusterer(bandwidth=0.3, recovery="components", min_size=0).fit()
    split = EmbeddingClusterer(bandwidth=0.3, min_size=0).fit()
    split.bandwidth_, split.metric_ = 0.6, "l1"  # a window the tuning might choose
    (a, sa), (b, sb) = floor.segment(emb, prob), split.segment(emb, prob)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    # the function scores with the window it is given
    _, wide = segment_embeddings(emb, prob, bandwidth=0.6, metric="l1", min_size=0)
    assert (wide != sb).any()


def test_tune_takes_its_grids_as_arguments():
    pytest.importorskip("torch")
    emb, prob = _two_blobs()
    truth = np.zeros((16, 16), np.int32)
    truth[2:, :8], truth[2:, 8:] = 1, 2
    preds, truths = [(emb, prob), (emb[:, :, ::-1].copy(), prob)], [truth, truth[:, ::-1].copy()]
    clu = EmbeddingClusterer(min_size=0).tune(preds, truths, metrics=("euclidean",), bandwidth_factors=(1.0, 2.0),
                                               core_fractions=(None,), min_shares=(0.1,), min_size_fractions=(),
                                               fg_thresholds=())
    grid = [r for r in clu.tuning_results_ if r["recovery"] == "split"]
    assert {r["metric"] for r in grid} == {"euclidean"} and {r["bandwidth"] for r in grid} == {0.5, 1.0}
    assert {r["core_fraction"] for r in grid} == {None} and {r["min_share"] for r in grid} == {0.1}
    thresholds = [r for r in clu.tuning_results_ if "pooled_score" not in r]
    assert [r["fg_threshold"] for r in thresholds] == [0.5]  # no other threshold: the configured one
    assert clu.fg_threshold_ == 0.5 and clu.min_size_ == 0
    labels = clu.segment(emb, prob)[0]
    assert len(set(zip(labels.ravel().tolist(), truth.ravel().tolist()))) == 3  # the two blobs, up to their ids
    for bad, match in [({"metrics": ("cosine",)}, "metrics"), ({"bandwidth_factors": ()}, "bandwidth_factors"),
                       ({"core_fractions": (0,)}, "core_fractions"), ({"fg_thresholds": (1.5,)}, "fg_thresholds"),
                       ({"scoring": "ap"}, "scoring")]:
        with pytest.raises(ValueError, match=match):
            EmbeddingClusterer().tune(preds, truths, **bad)
    with pytest.raises(ValueError, match="same length"):
        EmbeddingClusterer().tune(preds, truths[:1])
    with pytest.raises(ValueError, match=r"predictions\[0\] and label_maps\[0\]"):
        EmbeddingClusterer().tune(preds, [truth[:8], truth])
    with pytest.raises(TypeError, match="pair"):
        EmbeddingClusterer().tune([emb], [truth])


# --------------------------------------------------------------- nested in HarmonicSegmenter
@pytest.fixture(scope="module")
def fitted():
    pytest.importorskip("torch")
    from harmonic_seg import HarmonicSegmenter, Network
    from harmonic_seg.synthetic import make_instances

    d = make_instances(n_images=3, shape=(40, 40), n_instances=(2, 4), random_state=0)
    seg = HarmonicSegmenter(network=Network(depth=1, base_width=4), epochs=1, steps_per_epoch=1, batch_size=2,
                            crop_size=32,
                            validation_fraction=0, scale=1.0, tune_postprocessing=False, random_state=0)
    return seg.fit(d.images, d.labels), d


def test_segmenter_reaches_the_nested_parameters():
    from harmonic_seg import HarmonicSegmenter

    seg = HarmonicSegmenter().set_params(clustering__bandwidth=0.8, clustering__recovery="components")
    assert isinstance(seg.clustering, EmbeddingClusterer)
    assert seg.get_params()["clustering__bandwidth"] == 0.8
    assert seg.get_params()["clustering__recovery"] == "components"
    assert HarmonicSegmenter().get_params()["clustering"] is None


def test_segmenter_stores_the_fitted_clusterer_and_keeps_the_flat_attributes(fitted):
    seg, d = fitted
    clu = seg.clustering_
    assert isinstance(clu, EmbeddingClusterer)
    assert (seg.bandwidth_, seg.min_size_, seg.metric_, seg.recovery_) == (clu.bandwidth_, 10, "euclidean", "split")
    assert seg.fg_threshold_ == clu.fg_threshold_ == 0.5 and seg.tuning_results_ == []
    emb, prob = seg.predict_embeddings(d.images[:1])[0]
    np.testing.assert_array_equal(seg.predict(d.images[:1])[0], clu.segment(emb, prob)[0])
    again = pickle.loads(pickle.dumps(seg))
    again.min_size_ = 0  # the attribute is the clusterer's
    assert again.clustering_.min_size_ == 0 and seg.clustering_.min_size_ == 10


def test_segmenter_with_a_clusterer_uses_it_and_has_no_flat_duplicates(fitted, tmp_path):
    from harmonic_seg import HarmonicSegmenter

    seg, d = fitted
    nested = clone(seg).set_params(clustering=EmbeddingClusterer(min_size=3, recovery="components"))
    nested.fit(d.images, d.labels)
    assert (nested.min_size_, nested.recovery_) == (3, "components")
    assert nested.clustering_ is not nested.clustering and not hasattr(nested.clustering, "bandwidth_")
    nested.save(tmp_path / "m")
    loaded = HarmonicSegmenter.load(tmp_path / "m")
    assert loaded.clustering.get_params() == nested.clustering.get_params()
    assert (loaded.min_size_, loaded.recovery_) == (3, "components")
    np.testing.assert_array_equal(loaded.predict(d.images[:1])[0], nested.predict(d.images[:1])[0])
    with pytest.raises(ValueError, match="Invalid parameter 'min_size'.*use clustering__min_size instead"):
        clone(nested).set_params(min_size=5)  # a parameter of the clusterer only


def test_set_params_on_a_fitted_segmenter_reaches_its_clusterer(fitted):
    seg, d = fitted
    seg = pickle.loads(pickle.dumps(seg))
    seg.set_params(clustering__fg_threshold=0.6, clustering__merge_small=True)
    assert seg.fg_threshold_ == seg.clustering_.fg_threshold_ == 0.6 and seg.clustering_.merge_small


def test_predict_from_embeddings_is_predict_and_optimize_takes_the_grids(fitted):
    seg, d = fitted
    seg = pickle.loads(pickle.dumps(seg))
    embedded = seg.predict_embeddings(d.images[:2])
    for a, b in zip(seg.predict_from_embeddings(embedded), seg.predict(d.images[:2])):
        np.testing.assert_array_equal(a, b)
    fg = [p > 0.3 for _, p in embedded]
    labels, scores = seg.predict_from_embeddings(embedded, fg, return_scores=True)
    np.testing.assert_array_equal(labels[0], seg.predict(d.images[:1], [fg[0]])[0])
    assert len(scores) == 2
    with pytest.raises(TypeError, match="pairs"):
        seg.predict_from_embeddings(embedded[0])
    with pytest.raises(TypeError, match="unknown search grid"):
        seg.optimize_postprocessing(d.images[:1], d.labels[:1], core_fraction=(None,))
    seg.optimize_postprocessing(d.images[:2], d.labels[:2], metrics=("euclidean",), bandwidth_factors=(1.0,),
                                core_fractions=(None,), min_shares=(0.1,), fg_thresholds=())
    split = [r for r in seg.tuning_results_ if r["recovery"] == "split"]
    assert {r["metric"] for r in split} == {"euclidean"} and {r["core_fraction"] for r in split} == {None}
    assert seg.fg_threshold_ == 0.5


# --------------------------------------------------------------- old import paths and imports
@pytest.mark.parametrize("module, name, new", [
    ("harmonic_seg.nn", "MeanShift", "harmonic_seg.clustering.MeanShift"),
    ("harmonic_seg.nn", "mean_shift", "harmonic_seg.clustering.mean_shift"),
    ("harmonic_seg.nn", "cluster_embeddings", "harmonic_seg.clustering.cluster_embeddings"),
    ("harmonic_seg.nn.meanshift", "mean_shift", "harmonic_seg.clustering.mean_shift"),
    ("harmonic_seg.nn.meanshift", "cluster_embeddings", "harmonic_seg.clustering.cluster_embeddings"),
    ("harmonic_seg.nn.cluster", "cluster_embeddings", "harmonic_seg.clustering.cluster_embeddings"),
])
def test_old_import_paths_warn_and_give_the_new_objects(module, name, new):
    pytest.importorskip("torch")
    import importlib

    import harmonic_seg.clustering as clustering

    with pytest.warns(FutureWarning, match=new.replace(".", r"\.")):
        old = getattr(importlib.import_module(module), name)
    assert old is getattr(clustering, name)


def test_clustering_imports_without_torch_and_without_circles():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import harmonic_seg.clustering as c, harmonic_seg.clustering.tuning, harmonic_seg.postprocess\n"
        "from harmonic_seg.clustering import EmbeddingClusterer, segment_embeddings\n"
        "EmbeddingClusterer(bandwidth=0.4).get_params()\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # every module of the subpackage imports first in a fresh interpreter (no import circle)
    for module in ("harmonic_seg.clustering.meanshift", "harmonic_seg.clustering._embedding",
                   "harmonic_seg.clustering._meanshift_ops", "harmonic_seg.nn", "harmonic_seg.nn.meanshift",
                   "harmonic_seg.nn.cluster"):
        out = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", f"import {module}"],
                             capture_output=True, text=True)
        assert out.returncode == 0, (module, out.stderr)


def test_new_paths_do_not_warn():
    pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from harmonic_seg.clustering import MeanShift, cluster_embeddings, mean_shift  # noqa: F401
