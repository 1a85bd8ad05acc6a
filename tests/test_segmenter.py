import json
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score

from harmonic_seg import Augmentation, GuideFunctionFitter, HarmonicSegmenter, Loss, Network, Tiling
from harmonic_seg.clustering import EmbeddingClusterer
from harmonic_seg.clustering.tuning import FG_THRESHOLDS, fg_threshold_grid, validation_score
from harmonic_seg.metrics import SCORERS
from harmonic_seg.synthetic import make_instances

from ._sklearn_checks import DATA_FREE_CHECKS

TINY = dict(network=Network(depth=2, base_width=4), epochs=1, steps_per_epoch=2, batch_size=2, crop_size=32,
            num_threads=1)


@pytest.fixture(scope="module")
def data():
    d = make_instances(n_images=6, shape=(48, 48), n_instances=(3, 6), random_state=0)
    return d.images, d.labels


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return HarmonicSegmenter(random_state=0, validation_fraction=0.2, **TINY).fit(X, y)



@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
def test_data_free_sklearn_checks(check):
    check("HarmonicSegmenter", HarmonicSegmenter())


def test_keyword_only_and_tags():
    with pytest.raises(TypeError):
        HarmonicSegmenter(None)
    tags = HarmonicSegmenter().__sklearn_tags__()
    assert tags.target_tags.required and not tags.input_tags.two_d_array


def test_fit_predict_shapes_and_attributes(fitted, data):
    X, y = data
    assert fitted.guides_.n_guides_ == 12 and fitted.n_channels_in_ == 1
    assert len(fitted.history_) == 1 and {"train_loss", "val_loss"} <= set(fitted.history_[0])
    assert fitted.bandwidth_ == 0.5
    odd = [np.random.default_rng(0).random((37, 53)).astype(np.float32), X[0][:45, :20]]
    labels, scores = fitted.predict(odd, return_scores=True)
    assert [p.shape for p in labels] == [(37, 53), (45, 20)]
    assert all(p.dtype == np.int32 for p in labels)
    assert all(s.shape == (int(p.max()),) for p, s in zip(labels, scores))
    emb, prob = fitted.predict_embeddings(X[:1])[0]
    assert emb.shape == (12, 48, 48) and prob.shape == (48, 48)
    assert 0 <= fitted.score(X, y) <= 1


def test_foreground_mask_is_imposed(fitted, data):
    X, y = data
    none = [np.zeros_like(y[0], dtype=bool)]
    assert fitted.predict(X[:1], foreground=none)[0].max() == 0


def test_reproducible_and_set_params_equals_constructor(data):
    X, y = data
    a = HarmonicSegmenter(random_state=3, **TINY).fit(X, y)
    b = HarmonicSegmenter(**TINY).set_params(random_state=3).fit(X, y)
    for pa, pb in zip(a.module_.parameters(), b.module_.parameters()):
        assert torch.equal(pa, pb)
    assert a.history_[0]["train_loss"] == b.history_[0]["train_loss"]
    c = clone(a)
    assert not hasattr(c, "module_") and c.get_params()["random_state"] == 3


def test_multichannel_and_channel_check(data):
    X, y = data
    rgb = [np.stack([im, im * 0.5, 1 - im], axis=-1) for im in X]
    seg = HarmonicSegmenter(random_state=0, validation_fraction=0, **TINY).fit(rgb, y)
    assert seg.n_channels_in_ == 3
    with pytest.raises(ValueError, match="1 channel.*fitted on images with 3"):
        seg.predict(X[:1])


def test_pickle_joblib_and_safe_format_round_trip(fitted, data, tmp_path):
    X, _ = data
    ref = fitted.predict(X[:2])
    joblib.dump(fitted, tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib").predict(X[:2])
    assert all(np.array_equal(a, b) for a, b in zip(ref, again))
    fitted.save(tmp_path / "model")
    loaded = HarmonicSegmenter.load(tmp_path / "model")
    assert all(np.array_equal(a, b) for a, b in zip(ref, loaded.predict(X[:2])))
    assert loaded.get_params()["network__depth"] == 2 and loaded.guides_.guides_ == fitted.guides_.guides_
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted.save(tmp_path / "model")
    fitted.save(tmp_path / "model", overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a saved HarmonicSegmenter"):
        fitted.save(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "precious.txt").read_text() == "keep me"


def test_clustering_params_reach_the_clustering_without_refit(fitted, data, monkeypatch):
    X, _ = data
    seen = []
    import harmonic_seg.clustering._embedding as cluster

    real = cluster._cluster_embeddings  # what cluster_embeddings and the clusterer's segment run

    def spy(*a, **k):
        seen.append((k["core_threshold"], k["merge_small"]))
        return real(*a, **k)

    monkeypatch.setattr(cluster, "_cluster_embeddings", spy)
    seg = pickle.loads(pickle.dumps(fitted)).set_params(clustering__core_threshold=0.9, clustering__merge_small=True)
    seg.predict(X[:1])
    fitted.predict(X[:1])
    assert seen == [(0.9, True), (None, False)]


def test_amp_reaches_fit_and_predict(fitted, data):
    X, y = data
    from harmonic_seg.nn import Callback

    class Seen(Callback):
        dtypes = []

        def on_train_begin(self, trainer):
            self.dtypes.append(trainer.amp_dtype_)

    seg = HarmonicSegmenter(random_state=0, validation_fraction=0, amp=True, device="cpu", callbacks=[Seen()],
                            **TINY).fit(X, y)
    assert Seen.dtypes == [torch.bfloat16]
    bf16, _ = seg.predict_embeddings(X[:1])[0]
    fp32, _ = seg.set_params(amp=None).predict_embeddings(X[:1])[0]  # no refit: predict reads amp itself
    assert 0 < np.abs(bf16 - fp32).max() < 5e-2


def test_core_fraction_bool_is_refused_before_training(monkeypatch):
    from harmonic_seg.nn import trainer

    monkeypatch.setattr(trainer.Trainer, "fit", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", lambda *a, **k: pytest.fail("training started"))
    lab = np.zeros((48, 48), dtype=np.int32)
    lab[10:20, 10:20] = 1
    with pytest.raises(ValueError, match="clustering.core_fraction must be a finite number > 0 and <= 1 or None"):
        HarmonicSegmenter(clustering=EmbeddingClusterer(core_fraction=True), **TINY).fit([np.ones((48, 48))], [lab])


def _old_state(est):
    """``est.__getstate__()`` as pickled before the clustering was an estimator (its fitted values flat)."""
    state = est.__getstate__()
    clusterer = state.pop("clustering_")
    del state["clustering"]
    state.update({k: getattr(clusterer, k) for k in ("bandwidth_", "min_size_", "metric_", "core_fraction_",
                                                     "fg_threshold_", "recovery_", "min_share_", "tuning_results_")})
    return state


def test_model_saved_before_core_fraction_loads_without_it(fitted, data, tmp_path):
    fitted.save(tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    cfg["format_version"] = 1  # the flat clustering parameters of version 1, core_fraction not yet among them
    del cfg["fitted"]["core_fraction_"], cfg["fitted"]["fg_threshold_"]
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    loaded = HarmonicSegmenter.load(tmp_path / "model")
    assert loaded.clustering is None and loaded.core_fraction_ is None
    cfg["params"]["fg_threshold"] = 0.4  # saved before fg_threshold_ was recorded: the parameter stands in
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    old = HarmonicSegmenter.load(tmp_path / "model")
    assert old.fg_threshold_ == 0.4 and old.clustering.get_params() == EmbeddingClusterer(fg_threshold=0.4).get_params()
    state = _old_state(fitted)
    del state["fg_threshold_"]  # pickled before fg_threshold_ was recorded
    state["fg_threshold"] = 0.45
    est = HarmonicSegmenter.__new__(HarmonicSegmenter)
    est.__setstate__(pickle.loads(pickle.dumps(state)))
    assert est.fg_threshold_ == 0.45 and est.clustering.fg_threshold == 0.45 and "fg_threshold" not in est.__dict__
    ref = pickle.loads(pickle.dumps(fitted))  # the values an old model stands in for its missing fitted ones
    ref.core_fraction_, ref.fg_threshold_ = None, 0.5
    np.testing.assert_array_equal(loaded.predict(data[0][:1])[0], ref.predict(data[0][:1])[0])


def test_set_params_fg_threshold_changes_a_fitted_segmenter(fitted, data, monkeypatch):
    seg = pickle.loads(pickle.dumps(fitted))  # the fixture is shared
    seg.fg_threshold_ = 0.3  # as tuning may have chosen
    assert seg.set_params(clustering__fg_threshold=0.5).fg_threshold_ == 0.5
    _, prob = seg.predict_embeddings(data[0][:1])[0]
    t = float(np.quantile(prob, 0.5))
    seen = []
    monkeypatch.setattr(seg, "_cluster", lambda emb, fg, *a: seen.append(fg) or (np.zeros(fg.shape, np.int32), []))
    seg.set_params(clustering__fg_threshold=t).predict(data[0][:1])
    assert seg.fg_threshold_ == t
    np.testing.assert_array_equal(seen[0], prob > t)  # what predict clusters
    for bad in ({"clustering__fg_threshold": 1.5}, {"clustering__fg_threshold": "high", "clustering__min_size": 3}):
        with pytest.raises((ValueError, TypeError), match="fg_threshold"):
            seg.set_params(**bad)
        assert (seg.clustering.fg_threshold, seg.fg_threshold_, seg.clustering.min_size) == (t, t, 10)  # nothing set
    assert not hasattr(clone(seg).set_params(clustering__fg_threshold=0.7), "fg_threshold_")


def test_grid_search_over_guides_and_cross_val(data):
    X, y = data
    seg = HarmonicSegmenter(random_state=0, validation_fraction=0, **TINY)
    grid = {"guides": [GuideFunctionFitter(max_iter=20)], "guides__margin": [0.3, 0.7], "guides__n_guides": [4, 8]}
    gs = GridSearchCV(seg, grid, cv=2, scoring=SCORERS["sbd"], n_jobs=1).fit(X, y)
    assert len(gs.cv_results_["params"]) == 4
    assert gs.best_estimator_.guides_.n_guides_ in (4, 8)
    groups = [0, 0, 1, 1, 2, 2]
    scores = cross_val_score(seg, X, y, groups=groups, cv=GroupKFold(3), scoring=SCORERS["ap50"])
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


@pytest.mark.slow
def test_grid_search_two_jobs(data):
    X, y = data
    seg = HarmonicSegmenter(random_state=0, validation_fraction=0, **TINY)
    gs = GridSearchCV(seg, {"guides__margin": [0.3, 0.7]}, cv=2, n_jobs=2).fit(X, y)
    assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))


def test_guides_params_on_default_segmenter(data):
    X, y = data
    a = HarmonicSegmenter(random_state=0, **TINY).set_params(guides__n_guides=5).fit(X, y)
    assert a.guides_.n_guides_ == 5
    b = HarmonicSegmenter(random_state=0, **TINY).set_params(guides__n_guides=12).fit(X, y)
    c = HarmonicSegmenter(random_state=0, **TINY).fit(X, y)
    assert b.guides_.guides_ == c.guides_.guides_


def test_error_score(data):
    X, y = data
    bad = HarmonicSegmenter(crop_size=4, **{k: v for k, v in TINY.items() if k != "crop_size"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs = GridSearchCV(bad, {"crop_size": [4, 32]}, cv=2, error_score=np.nan).fit(X, y)
    scores = gs.cv_results_["mean_test_score"]
    assert np.isnan(scores[0]) and np.isfinite(scores[1]) and gs.best_params_ == {"crop_size": 32}
    with pytest.raises(ValueError, match="crop_size"):
        GridSearchCV(bad, {"crop_size": [4, 32]}, cv=2, error_score="raise").fit(X, y)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda X, y: (X[:3], y[:2]), ValueError, "same length"),
        (lambda X, y: (X[:1], [y[0][:10]]), ValueError, r"y\[0\] has shape"),
        (lambda X, y: ([np.stack([X[0]] * 40)], y[:1]), ValueError, "3-D stack"),
        (lambda X, y: (X[:1], [y[0].astype(float)]), TypeError, "integer instance ids"),
        (lambda X, y: (X[:1], [-y[0]]), ValueError, "non-negative"),
        (lambda X, y: ([], []), ValueError, "at least one"),
        (lambda X, y: ([np.full((8, 8), np.nan)], [np.zeros((8, 8), int)]), ValueError, "NaN"),
    ],
)
def test_bad_fit_input_fails_before_training(data, make, exc, match, monkeypatch):
    import harmonic_seg.nn.trainer as trainer

    monkeypatch.setattr(trainer.Trainer, "fit", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", lambda *a, **k: pytest.fail("training started"))
    X, y = make(*data)
    with pytest.raises(exc, match=match):
        HarmonicSegmenter(**TINY).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(network=Network(variant="sine")), "network.variant must be one of"),
        (dict(epochs=-1), "epochs"),
        (dict(percentiles=(99, 1)), "percentiles"),
        (dict(device="tpu"), "device"),
        (dict(guides="fitter"), "guides"),
        (dict(scale=0), "scale"),
        (dict(loss="dice"), "loss"),
        (dict(augmentation=Augmentation(scale_range=(0, 1))),
         "augmentation.scale_range must be None or \\(low, high\\) with 0 < low <= high"),
        (dict(augmentation=Augmentation(flips="yes")), "augmentation.flips must be a bool; got 'yes'"),
        (dict(loss=Loss(name="dice")), "loss.name must be one of"),
        (dict(tiling=Tiling(size=8)), "tiling.size must be an integer >= 16"),
        (dict(augmentation=dict(flips=False)), "augmentation"),
        (dict(percentiles=(1, 101)), "percentiles"),
        (dict(percentiles=("1", "99")), "percentiles must be None or"),
    ],
)
def test_bad_params_name_the_parameter(data, params, match):
    X, y = data
    with pytest.raises((ValueError, TypeError), match=match):
        HarmonicSegmenter(**{**TINY, **params}).fit(X, y)


def test_predict_before_fit(data):
    with pytest.raises(NotFittedError):
        HarmonicSegmenter().predict(data[0])


@pytest.mark.data
def test_fit_predict_on_real_bbbc010_sample(tmp_path):
    from harmonic_seg.io import load_bbbc010

    from .conftest import data_path

    data_path("bbbc010")
    d = load_bbbc010(split="train", input="mask", ids=["A02", "A03"])
    seg = HarmonicSegmenter(random_state=0, validation_fraction=0, **TINY).fit(d.images, d.labels, ignore=d.ignore)
    assert seg.guides_.separation_ == 1.0  # eps = 0.5 separates every worm pair of these wells
    labels, scores = seg.predict(d.images[:1], foreground=[d.images[0] > 0], return_scores=True)
    assert labels[0].shape == (520, 696) and labels[0].max() == scores[0].size
    assert not np.any(labels[0][d.images[0] == 0])  # the given foreground is respected
    seg.save(tmp_path / "m")
    again = HarmonicSegmenter.load(tmp_path / "m").predict(d.images[:1], foreground=[d.images[0] > 0])
    assert np.array_equal(again[0], labels[0])


def test_scale_reduces_what_the_network_sees_not_what_predict_returns(data, tmp_path):
    X, y = data
    seg = HarmonicSegmenter(random_state=0, scale=0.5, **TINY).fit(X, y)
    assert seg.guides_.reference_shape_ == (24, 24)  # guides fitted on the reduced label maps
    labels = seg.predict(X[:2])
    emb, prob = seg.predict_embeddings(X[:1])[0]
    assert [lab.shape for lab in labels] == [(48, 48)] * 2
    assert emb.shape == (seg.guides_.n_guides_, 48, 48) and prob.shape == (48, 48)
    seg.save(tmp_path / "model")
    loaded = HarmonicSegmenter.load(tmp_path / "model")
    assert loaded.scale == 0.5
    for a, b in zip(loaded.predict(X[:2]), labels):
        np.testing.assert_array_equal(a, b)


def test_scale_with_ignore_masks(data, monkeypatch):
    import harmonic_seg.nn.trainer as trainer

    X, y = data
    seen = {}
    real = trainer.Trainer._fit_training_set

    def spy(self, data, **kw):  # the training set as the segmenter hands it over, validated
        seen["ignore"] = data.ignore
        return real(self, data, **kw)

    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", spy)
    ignore = [None] * (len(y) - 1) + [np.eye(48, dtype=bool)]
    HarmonicSegmenter(scale=0.5, **TINY).fit(X, y, ignore=ignore)
    assert [(ig.shape, ig.dtype, int(ig.sum())) for ig in seen["ignore"]] == \
        [((24, 24), np.dtype(bool), 0)] * (len(y) - 1) + [((24, 24), np.dtype(bool), 24)]
    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match=r"ignore\[0\] has shape \(10, 10\)"):
        HarmonicSegmenter(scale=0.5, **TINY).fit(X, y, ignore=[np.zeros((10, 10), bool)] + ignore[1:])


def test_scale_that_leaves_no_label_fails_before_training(monkeypatch):
    import harmonic_seg.nn.trainer as trainer

    monkeypatch.setattr(trainer.Trainer, "fit", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", lambda *a, **k: pytest.fail("training started"))
    lab = np.zeros((200, 200), dtype=np.int32)  # 20 x 20 pixels at scale 0.1: large enough for the network
    lab[:2, :2] = 1
    with pytest.raises(ValueError, match="scale=0.1 leaves no labelled pixel"):
        HarmonicSegmenter(scale=0.1, **TINY).fit([np.ones((200, 200))], [lab])


def test_state_pickled_before_new_parameters_takes_their_defaults(fitted, data):
    state = _old_state(fitted)
    state.update(min_size=10, split_components=False, bandwidth=None, metric="euclidean", fg_threshold=0.5,
                 fg_weight=1.0, boundary_weight=0.0, scale_range=(0.75, 1.33), flips=True, rotate=False,
                 tile_size=1024, tile_overlap=None, patience=None)  # the flat parameters of earlier versions
    for name in ("scale", "loss", "validation_indices_", "core_fraction_", "augmentation", "tiling"):
        state.pop(name)
    est = HarmonicSegmenter.__new__(HarmonicSegmenter)
    est.__setstate__(pickle.loads(pickle.dumps(state)))
    assert (est.scale, est.clustering, est.augmentation, est.tiling, est.loss) == (1.0, None, None, None, "harmonic")
    assert est.validation_indices_ is None and est.core_fraction_ is None
    assert not {"min_size", "tile_size", "patience", "flips"} & set(est.__dict__)
    for a, b in zip(est.predict(data[0][:1]), fitted.predict(data[0][:1])):
        np.testing.assert_array_equal(a, b)


def test_discriminative_baseline_reaches_the_trainer_and_round_trips(data, tmp_path, monkeypatch):
    from harmonic_seg.nn import losses

    X, y = data
    called = []
    original = losses.discriminative_loss
    monkeypatch.setattr("harmonic_seg.nn.trainer.discriminative_loss",
                        lambda *a, **k: called.append(1) or original(*a, **k))
    seg = HarmonicSegmenter(loss="discriminative", guides=GuideFunctionFitter(margin=1.0), random_state=0,
                            validation_fraction=0, **TINY).fit(X, y)
    assert called and all(np.isfinite(r["train_l1"]) for r in seg.history_)
    assert seg.bandwidth_ == 0.5  # the loss's pull margin, not the guides' margin
    assert seg.predict(X[:1])[0].shape == X[0].shape[:2]
    seg.save(tmp_path / "m")
    assert HarmonicSegmenter.load(tmp_path / "m").loss == "discriminative"


def test_optimize_postprocessing_on_chosen_images_and_persisted(data, tmp_path):
    X, y = data
    seg = HarmonicSegmenter(random_state=0, validation_fraction=0.35, tune_postprocessing=True, **TINY).fit(X, y)
    assert len(seg.validation_indices_) == 2 and len(seg.tuning_results_) > 0
    seg.optimize_postprocessing(X[:3], y[:3], scoring="accuracy")
    # the clustering grid at the configured threshold, then the thresholds with the best clustering
    n_t = len(fg_threshold_grid(0.5))
    grid, by_threshold = seg.tuning_results_[:-n_t], seg.tuning_results_[-n_t:]
    assert {r["fg_threshold"] for r in grid} == {0.5}
    assert [r["fg_threshold"] for r in by_threshold] == [0.5, 0.3, 0.4, 0.6, 0.7]
    # the chosen row (the simplest within noise of the best pooled score; the floor keeps the defaults)
    best = next(r for r in grid if (r["recovery"], r["min_size"]) == (seg.recovery_, seg.min_size_) and (
        seg.recovery_ == "components" or (r["metric"], r["bandwidth"], r["core_fraction"], r["min_share"]) == (
            seg.metric_, seg.bandwidth_, seg.core_fraction_, seg.min_share_)))
    assert best["pooled_score"] <= best["score"] and {r["recovery"] for r in grid} == {"components", "split"}
    assert by_threshold[0]["score"] == pytest.approx(best["score"])
    # the configured threshold unless another scores higher beyond noise (_tuning.grid_search_threshold)
    assert seg.fg_threshold_ in FG_THRESHOLDS and (seg.fg_threshold_ == 0.5 or max(
        r["score"] for r in by_threshold if r["fg_threshold"] == seg.fg_threshold_) > by_threshold[0]["score"])
    for r in by_threshold:
        assert (r["metric"], r["bandwidth"], r["min_size"], r["core_fraction"]) == (
            seg.metric_, seg.bandwidth_, seg.min_size_, seg.core_fraction_)
        seg.fg_threshold_ = r["fg_threshold"]  # what predict then gives
        assert validation_score(y[:3], seg.predict(X[:3]), "accuracy") == pytest.approx(r["score"])
    assert {r["core_fraction"] for r in grid} == {None, 0.8, 0.6}
    factors = np.array([0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0])
    for metric, scale in (("euclidean", 1.0), ("l1", np.sqrt(2 * seg.guides_.n_guides_ / np.pi))):
        tried = sorted({r["bandwidth"] for r in seg.tuning_results_ if r["metric"] == metric})
        np.testing.assert_allclose(tried, 0.5 * factors * scale)
    # sizes around min_size and fractions of the median instance area of y; each point scores what
    # predict gives with its parameters (the search clusters once per bandwidth and drops small instances)
    median_area = np.median(np.concatenate([np.bincount(lab.ravel())[1:] for lab in y[:3]]))
    sizes = sorted({r["min_size"] for r in seg.tuning_results_})
    assert {0, 10, 30, 80} | {round(f * median_area) for f in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)} == set(sizes)
    tuned = (seg.metric_, seg.bandwidth_, seg.min_size_, seg.core_fraction_)
    seg.fg_threshold_ = 0.5  # the grid's rows were scored at the configured threshold
    recovery, share, seg.recovery_ = seg.recovery_, seg.min_share_, "split"
    rows = [r for r in grid if r["bandwidth"] == seg.bandwidth_ and r["metric"] == seg.metric_]
    for r in rows[::3]:
        seg.min_size_, seg.core_fraction_, seg.min_share_ = r["min_size"], r["core_fraction"], r["min_share"]
        assert validation_score(y[:3], seg.predict(X[:3]), "accuracy") == pytest.approx(r["score"])
    seg.metric_, seg.bandwidth_, seg.min_size_, seg.core_fraction_ = tuned
    seg.recovery_, seg.min_share_ = recovery, share
    seg.core_fraction_, seg.fg_threshold_ = 0.6, 0.35  # values other than the parameters', to see them saved
    seg.save(tmp_path / "m")
    loaded = HarmonicSegmenter.load(tmp_path / "m")
    assert (loaded.metric_, loaded.bandwidth_, loaded.min_size_) == (seg.metric_, seg.bandwidth_, seg.min_size_)
    assert loaded.core_fraction_ == 0.6 and loaded.clustering is None
    assert loaded.fg_threshold_ == 0.35
    assert pickle.loads(pickle.dumps(seg)).fg_threshold_ == 0.35
    assert loaded.validation_indices_ == seg.validation_indices_
    for a, b in zip(loaded.predict(X[:1]), seg.predict(X[:1])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="scoring must be one of"):
        seg.optimize_postprocessing(X[:1], y[:1], scoring="ap")
    with pytest.raises(NotFittedError):
        HarmonicSegmenter().optimize_postprocessing(X[:1], y[:1])


# --- settings the network cannot train with are refused before stage 1 ---------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if stage 1 (the guides) or the training starts."""
    import harmonic_seg.nn.trainer as trainer

    monkeypatch.setattr(GuideFunctionFitter, "fit", lambda *a, **k: pytest.fail("stage 1 started"))
    monkeypatch.setattr(trainer.Trainer, "fit", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", lambda *a, **k: pytest.fail("training started"))


@pytest.mark.parametrize(
    "make, params, match",
    [
        # a (Z=3, H, W=8) stack was read as an 8-channel image
        (lambda X, y: ([np.stack([X[0][:, :8]] * 3)], [y[0][:3, :48]]), {},
         r"X\[0\] has shape \(3, 48, 8\).*\(H, W\) or \(H, W, C\).*np\.moveaxis\(im, 0, -1\)"),
        # scale=0.01 trained on 1 x 1 images
        (lambda X, y: (X, y), dict(scale=0.01),
         r"scale=0.01 reduces X\[0\] of shape \(48, 48\) to 1 x 1 pixels.*8 x 8.*use scale >= 0.167"),
        # crop_size <= 2**depth with batch_size=1 failed in torch's BatchNorm after stage 1
        (lambda X, y: (X, y), dict(network=Network(depth=3, base_width=4), crop_size=8, batch_size=1),
         r"crop_size=8 is too small for depth=3.*at least 16"),
        # 1e300 became inf in float32 and was reported as NaN
        (lambda X, y: ([X[0].astype(np.float64) * 1e300], y[:1]), dict(percentiles=None),
         r"X\[0\] holds values up to 1e\+300, beyond float32's range.*percentiles=\(1.0, 99.8\)"),
    ],
)
def test_settings_the_network_cannot_use_fail_before_stage_1(data, no_work, make, params, match):
    X, y = make(*data)
    with pytest.raises(ValueError, match=match):
        HarmonicSegmenter(**{**TINY, **params}).fit(X, y)


def test_device_without_cuda_fails_before_stage_1(data, no_work, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"device='{device}' but this torch .* no CUDA GPU.*'cpu'.*'auto'"):
            HarmonicSegmenter(**{**TINY, "device": device}).fit(*data)


def test_float64_images_beyond_float32_range_are_normalised_not_nan():
    im = np.random.default_rng(0).random((40, 40))
    seg = HarmonicSegmenter()
    big, small = seg._prepare([im * 1e300])[0], seg._prepare([im])[0]
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big, small, rtol=1e-5, atol=1e-6)


def test_crop_larger_than_the_images_is_clipped_to_them(data, monkeypatch):
    import harmonic_seg.nn.data as nn_data

    X, y = data
    sizes = []
    real = nn_data.CropSampler._setup

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        sizes.append(self.crop_size)

    monkeypatch.setattr(nn_data.CropSampler, "_setup", spy)
    # crop_size=10**6 asked numpy for a 3.6 TiB crop; the images are 48 x 48 (24 x 24 at scale 0.5)
    HarmonicSegmenter(**{**TINY, "crop_size": 10**6, "validation_fraction": 0.2}).fit(X[:3], y[:3])
    HarmonicSegmenter(**{**TINY, "crop_size": 10**6, "validation_fraction": 0, "scale": 0.5}).fit(X[:3], y[:3])
    assert sizes == [(48, 48), (48, 48), (24, 24)]  # training and validation crops, then at scale 0.5


def test_fit_leaves_torch_global_generator_as_it_was_and_is_repeatable(data):
    X, y = data
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a = HarmonicSegmenter(random_state=0, **TINY).fit(X[:3], y[:3])
    assert torch.equal(torch.get_rng_state(), before)  # fit used to reseed torch's global generator
    torch.rand(10)  # the user's own torch code between two fits changes nothing
    b = HarmonicSegmenter(random_state=0, **TINY).fit(X[:3], y[:3])
    for k, v in a.module_.state_dict().items():
        assert torch.equal(v, b.module_.state_dict()[k]), k


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(num_threads=np.nan), "num_threads"),
        (dict(num_threads=np.inf), "num_threads"),
        (dict(num_threads=0), "num_threads"),
        (dict(num_threads=False), "num_threads"),
        (dict(num_threads=1e300), "num_threads"),
        (dict(percentiles=(1,)), "percentiles"),
        (dict(scale=np.nan), "scale"),
        (dict(scale=None), "scale"),
        (dict(scale=1e300), "scale"),
        (dict(tiling=Tiling(overlap=np.nan)), "tiling.overlap"),
        (dict(device=""), "device"),
    ],
)
def test_parameters_set_after_fit_are_checked_before_predicting(fitted, data, params, match, monkeypatch):
    # they failed deep in the thread settings, the normalisation or scipy's zoom
    import harmonic_seg.nn as hnn

    X, y = data
    seg = clone(fitted)
    seg.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    seg.set_params(**params)
    monkeypatch.setattr(hnn, "predict_embeddings", lambda *a, **k: pytest.fail("the network ran"))
    for call in (lambda: seg.predict(X[:1]), lambda: seg.predict_embeddings(X[:1]), lambda: seg.score(X[:1], y[:1]),
                 lambda: seg.optimize_postprocessing(X[:1], y[:1])):
        with pytest.raises((ValueError, TypeError), match=match):
            call()


def test_a_device_set_after_fit_is_not_required_to_be_available(fitted, data):
    seg = clone(fitted)
    seg.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    seg.set_params(device="cuda")  # the network stays where fit or load put it
    assert seg.predict(data[0][:1])[0].shape == data[0][0].shape[:2]


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(loss=Loss(boundary_weight=1e300)), "loss.boundary_weight"),  # the loss became NaN once training began
        (dict(loss=Loss(fg_weight=1e7)), "loss.fg_weight"),
        (dict(scale=1e300), "scale"),
        (dict(augmentation=Augmentation(scale_range=(0.5, np.inf))), "augmentation.scale_range"),  # OverflowError
        (dict(callbacks=[None]), "callbacks\\[0\\]"),  # was found when the Trainer was built, after stage 1
    ],
)
def test_absurd_params_are_refused_before_the_guide_functions(data, params, match, monkeypatch):
    monkeypatch.setattr(GuideFunctionFitter, "fit", lambda *a, **k: pytest.fail("stage 1 started"))
    X, y = data
    with pytest.raises((ValueError, TypeError), match=match):
        HarmonicSegmenter(**TINY, **params).fit(X[:2], y[:2])
