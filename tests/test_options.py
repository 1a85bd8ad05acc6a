"""The nested estimators of HarmonicSegmenter (network, clustering, augmentation, tiling, loss) and what they replaced:
the flat parameters of earlier versions, in saved models and pickles, and ``patience``."""

import inspect
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from harmonic_seg import Augmentation, HarmonicSegmenter, Loss, Network, Tiling
from harmonic_seg.clustering import EmbeddingClusterer
from harmonic_seg.nn import EarlyStopping, HarmonicUNet, Trainer, TrainConfig
from harmonic_seg.synthetic import make_instances

from ._sklearn_checks import DATA_FREE_CHECKS

DATA = Path(__file__).resolve().parent / "data"
TINY = dict(network=Network(depth=2, base_width=4), epochs=1, steps_per_epoch=2, batch_size=2, crop_size=32,
            num_threads=1)
REMOVED = ("bandwidth", "min_size", "split_components", "merge_small", "metric", "fg_threshold", "core_threshold",
           "core_fraction", "scale_range", "flips", "rotate", "tile_size", "tile_overlap", "fg_weight",
           "boundary_weight", "patience", "depth", "base_width", "norm", "variant")


@pytest.mark.parametrize("cls", [Network, Augmentation, Tiling, Loss], ids=lambda c: c.__name__)
@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
def test_data_free_sklearn_checks(cls, check):
    check(cls.__name__, cls())


def test_the_segmenter_keeps_its_own_parameters_only():
    params = inspect.signature(HarmonicSegmenter).parameters
    assert len(params) <= 24
    assert not set(REMOVED) & set(params)
    assert {"network", "clustering", "augmentation", "tiling", "loss"} <= set(params)


def test_none_means_the_default_estimators():
    seg = HarmonicSegmenter()
    assert (seg.network, seg.clustering, seg.augmentation, seg.tiling, seg.loss) == (
        None, None, None, None, "discriminative")
    assert Network().get_params() == {"depth": 4, "base_width": "auto", "norm": "batch", "variant": "sin"}
    # the defaults the flat parameters had
    assert EmbeddingClusterer().get_params() == EmbeddingClusterer(
        bandwidth=None, min_size=10, split_components=False, merge_small=False, metric="euclidean", fg_threshold=0.5,
        core_threshold=None, core_fraction=None).get_params()
    assert Augmentation().get_params() == {"scale_range": (0.75, 1.33), "flips": True, "rotate": False}
    assert Tiling().get_params() == {"size": 1024, "overlap": None}
    assert Loss().get_params() == {"name": "discriminative", "fg_weight": 1.0, "boundary_weight": 0.0}


def test_nested_parameters_are_reached_while_none_and_round_trip():
    seg = clone(HarmonicSegmenter()).set_params(clustering__bandwidth=0.3, augmentation__rotate=True,
                                                tiling__size=512, loss__fg_weight=2.0, network__depth=3)
    params = seg.get_params()
    assert params["clustering__bandwidth"] == 0.3 and params["augmentation__rotate"] is True
    assert params["tiling__size"] == 512 and params["tiling__overlap"] is None
    assert params["loss__fg_weight"] == 2.0 and params["loss__name"] == "discriminative"  # the name kept
    assert params["network__depth"] == 3 and params["network__base_width"] == "auto"
    again = clone(seg)
    assert again.get_params(deep=False).keys() == seg.get_params(deep=False).keys()
    for name in ("network", "clustering", "augmentation", "tiling", "loss"):
        assert getattr(again, name) is not getattr(seg, name)
        assert getattr(again, name).get_params() == getattr(seg, name).get_params()
    assert HarmonicSegmenter(loss="harmonic").set_params(loss__boundary_weight=1.0).loss.get_params() == {
        "name": "harmonic", "fg_weight": 1.0, "boundary_weight": 1.0}
    HarmonicSegmenter().set_params(**seg.get_params())  # set_params(**get_params()) works


def test_a_removed_parameter_in_set_params_names_its_replacement():
    with pytest.raises(ValueError, match="'bandwidth'.*use clustering__bandwidth instead"):
        HarmonicSegmenter().set_params(bandwidth=0.3)
    with pytest.raises(ValueError, match="'tile_size'.*use tiling__size instead"):
        HarmonicSegmenter().set_params(tile_size=512)
    with pytest.raises(ValueError, match=r"'patience'.*callbacks=\[EarlyStopping"):
        HarmonicSegmenter().set_params(patience=3)
    with pytest.raises(ValueError, match="'depth'.*use network__depth instead"):
        HarmonicSegmenter().set_params(depth=3)
    with pytest.raises(TypeError):
        HarmonicSegmenter(min_size=3)


@pytest.fixture(scope="module")
def data():
    d = make_instances(n_images=4, shape=(48, 48), n_instances=(3, 6), random_state=0)
    return d.images, d.labels


def test_grid_search_over_a_nested_parameter(data):
    X, y = data
    seg = HarmonicSegmenter(random_state=0, validation_fraction=0, tune_postprocessing=False, **TINY)
    gs = GridSearchCV(seg, {"augmentation__flips": [False, True]}, cv=2, n_jobs=1).fit(X, y)
    assert [p["augmentation__flips"] for p in gs.cv_results_["params"]] == [False, True]
    assert gs.best_estimator_.augmentation.flips in (False, True)
    assert seg.augmentation is None  # the search worked on clones


@pytest.mark.parametrize("params, match", [
    (dict(augmentation=Augmentation(scale_range=(2, 1))), "augmentation.scale_range"),
    (dict(tiling=Tiling(overlap=-1)), "tiling.overlap must be an integer >= 0"),
    (dict(loss=Loss(fg_weight=-1)), "loss.fg_weight"),
    (dict(clustering=EmbeddingClusterer(min_size=-1)), "clustering.min_size must be an integer >= 0"),
    (dict(loss="l2"), "loss"),
    (dict(network=Network(depth=9)), "network.depth must be an integer >= 0 and <= 8"),
    (dict(network=Network(norm="layer")), "network.norm must be one of"),
])
def test_bad_nested_values_are_refused_before_any_work(data, params, match, monkeypatch):
    from harmonic_seg import GuideFunctionFitter

    monkeypatch.setattr(GuideFunctionFitter, "fit", lambda *a, **k: pytest.fail("stage 1 started"))
    with pytest.raises((ValueError, TypeError), match=match):
        HarmonicSegmenter(**{**TINY, **params}).fit(*data)


# ------------------------------------------------------------------------------------------- patience
def _train(config_patience, callbacks, lr_schedule="constant"):
    from harmonic_seg.guides import random_guides

    d = make_instances(n_images=4, shape=(40, 40), n_instances=(2, 4), random_state=0)
    guides = random_guides(4, (40, 40), random_state=0)
    torch.manual_seed(0)
    net = HarmonicUNet(1, 4, guides, depth=1, base_width=4)
    config = TrainConfig(epochs=8, steps_per_epoch=1, batch_size=2, crop_size=32, learning_rate=0.3,
                         lr_schedule=lr_schedule, validation_fraction=0.25, patience=config_patience, amp=None,
                         num_threads=1, random_state=0)
    images = [np.asarray(im, np.float32)[None] for im in d.images]  # (C, H, W)
    trainer = Trainer(net, guides, config, callbacks=callbacks).fit(images, d.labels)
    return trainer


def test_an_early_stopping_callback_does_what_patience_did():
    old = _train(1, [])
    new = _train(None, [EarlyStopping(patience=1)])
    assert old.stopped_early_ and new.stopped_early_ and len(old.history) < 8  # it did stop early
    assert [r["val_loss"] for r in new.history] == [r["val_loss"] for r in old.history]
    assert new.best_epoch_ == old.best_epoch_
    for (k, a), b in zip(old.module.state_dict().items(), new.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)  # the best epoch's weights kept by both
    plateau = [_train(6, [], "plateau"), _train(None, [EarlyStopping(patience=6)], "plateau")]
    assert [t.scheduler_.patience for t in plateau] == [2, 2]  # a third of the patience, as before


def test_fit_passes_an_early_stopping_callback_last(data, monkeypatch):
    import harmonic_seg.nn.trainer as trainer

    seen = {}
    real = trainer.Trainer._fit_training_set

    def spy(self, data, **kw):
        seen["callbacks"], seen["patience"] = list(self.callbacks), self.config.patience
        return real(self, data, **kw)

    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", spy)

    class Note:
        def on_train_begin(self, t): pass

        def on_epoch_end(self, t, r): pass

        def on_train_end(self, t): pass

    stop, note = EarlyStopping(patience=2), Note()
    HarmonicSegmenter(callbacks=[stop, note], tune_postprocessing=False, random_state=0, **TINY).fit(*data)
    assert seen["callbacks"] == [note, stop] and seen["patience"] is None


# ------------------------------------------------------------------------ models of earlier versions
FLAT_OLD = dict(bandwidth=0.3, min_size=3, merge_small=True, fg_threshold=0.4, scale_range=(0.9, 1.1), rotate=True,
                tile_size=512, tile_overlap=16, fg_weight=2.0, boundary_weight=0.5, patience=4)


def _check_nested(seg):
    assert seg.clustering.get_params() == EmbeddingClusterer(bandwidth=0.3, min_size=3, merge_small=True,
                                                             fg_threshold=0.4).get_params()
    assert seg.augmentation.get_params() == {"scale_range": (0.9, 1.1), "flips": True, "rotate": True}
    assert seg.tiling.get_params() == {"size": 512, "overlap": 16}
    assert seg.loss.get_params() == {"name": "harmonic", "fg_weight": 2.0, "boundary_weight": 0.5}
    assert [type(cb) for cb in seg.callbacks] == [EarlyStopping] and seg.callbacks[0].patience == 4
    assert not set(REMOVED) & set(seg.__dict__)


def test_a_model_folder_of_format_1_with_flat_values_loads_them_nested(tmp_path):
    shutil.copytree(DATA / "model_v1", tmp_path / "v1")
    cfg = json.loads((tmp_path / "v1" / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["params"]["tile_size"] == 1024
    cfg["params"].update(FLAT_OLD, scale_range=[0.9, 1.1])
    (tmp_path / "v1" / "config.json").write_text(json.dumps(cfg))
    seg = HarmonicSegmenter.load(tmp_path / "v1")
    _check_nested(seg)
    expected = np.load(DATA / "model_v1_expected.npz")
    plain = HarmonicSegmenter.load(DATA / "model_v1")
    # its one flat value other than the default (min_size=3) made a clusterer
    assert plain.clustering.get_params() == EmbeddingClusterer(min_size=3).get_params()
    assert plain.tiling is None and plain.augmentation is None and plain.loss == "harmonic"
    assert plain.network.get_params() == Network(depth=2, base_width=4).get_params()
    assert plain.get_params(deep=False).keys() == HarmonicSegmenter().get_params(deep=False).keys()
    np.testing.assert_array_equal(plain.predict([expected["image"]])[0], expected["labels"])
    seg.save(tmp_path / "v2")  # the nested estimators in sections of their own, format 2
    saved = json.loads((tmp_path / "v2" / "config.json").read_text())
    assert saved["format_version"] == 2 and not set(REMOVED) & set(saved["params"]) and "loss" not in saved["params"]
    assert saved["tiling_params"] == {"size": 512, "overlap": 16} and saved["loss_params"]["fg_weight"] == 2.0
    assert saved["network_params"] == {"depth": 2, "base_width": 4, "norm": "batch", "variant": "sin"}
    again = HarmonicSegmenter.load(tmp_path / "v2")
    assert again.callbacks is None  # callbacks are code, never saved
    for name in ("network", "clustering", "augmentation", "tiling", "loss"):
        assert getattr(again, name).get_params() == getattr(seg, name).get_params()
    np.testing.assert_array_equal(again.predict([expected["image"]])[0], seg.predict([expected["image"]])[0])


def test_default_nested_estimators_stay_none_through_save_and_load(tmp_path):
    seg = HarmonicSegmenter.load(DATA / "model_v1")
    seg.set_params(network=None, clustering=None, loss="discriminative")  # the defaults (not for predicting)
    seg.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert not {"network_params", "clustering_params", "augmentation_params", "tiling_params", "loss_params"} & set(saved)
    loaded = HarmonicSegmenter.load(tmp_path / "m")
    assert (loaded.network, loaded.clustering, loaded.augmentation, loaded.tiling) == (None,) * 4
    assert loaded.loss == "discriminative"


def test_a_flat_value_in_a_format_2_file_is_refused(tmp_path):
    HarmonicSegmenter.load(DATA / "model_v1").save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["params"]["tile_size"] = 512
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="params.tile_size is not a parameter of HarmonicSegmenter"):
        HarmonicSegmenter.load(tmp_path / "m")


def test_a_bad_flat_value_of_format_1_is_refused_naming_it(tmp_path):
    shutil.copytree(DATA / "model_v1", tmp_path / "v1")
    cfg = json.loads((tmp_path / "v1" / "config.json").read_text())
    cfg["params"]["min_size"] = -3
    (tmp_path / "v1" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="params.min_size is not allowed"):
        HarmonicSegmenter.load(tmp_path / "v1")


def test_a_pickle_of_an_earlier_version_maps_its_flat_attributes(data):
    X, y = data
    ref = HarmonicSegmenter(tune_postprocessing=False, random_state=0, validation_fraction=0, **TINY).fit(X, y)
    state = ref.__getstate__()
    for name in ("network", "clustering", "augmentation", "tiling"):  # as pickled before they existed: flat values
        del state[name]
    state.update(FLAT_OLD, loss="harmonic", depth=2, base_width=4, norm="batch", variant="sin")
    est = HarmonicSegmenter.__new__(HarmonicSegmenter)
    est.__setstate__(pickle.loads(pickle.dumps(state)))
    _check_nested(est)
    assert est.network.get_params() == ref.network.get_params()
    params = est.get_params()
    assert params["clustering__bandwidth"] == 0.3 and params["tiling__size"] == 512
    assert params["loss__boundary_weight"] == 0.5 and params["augmentation__rotate"] is True
    # the fitted clusterer is unchanged: predict clusters as the model did
    np.testing.assert_array_equal(est.predict(X[:1])[0], ref.predict(X[:1])[0])
    defaults = ref.__getstate__()
    for name in ("network", "clustering", "augmentation", "tiling"):
        del defaults[name]
    defaults.update(bandwidth=None, min_size=10, tile_size=1024, tile_overlap=None, flips=True, fg_weight=1.0,
                    patience=None)
    plain = HarmonicSegmenter.__new__(HarmonicSegmenter)
    plain.__setstate__(defaults)  # flat values at their defaults: the nested estimators stay None
    assert (plain.network, plain.clustering, plain.augmentation, plain.tiling, plain.callbacks) == (None,) * 5
    assert plain.get_params(deep=False).keys() == ref.get_params(deep=False).keys()
