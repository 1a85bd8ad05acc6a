"""A grid search under joblib's dask backend finds what the sequential search finds (same seeds, same scores)."""

import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import joblib  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network  # noqa: E402
from harmonic_seg.synthetic import make_instances  # noqa: E402


def search():
    est = HarmonicSegmenter(guides=GuideFunctionFitter(max_iter=10), network=Network(depth=1, base_width=8), epochs=3,
                            steps_per_epoch=3, crop_size=32, batch_size=2, learning_rate=1e-2,
                            validation_fraction=0, device="cpu", num_threads=1, random_state=0,
                            loss="harmonic", scale=1.0, amp=False, tune_postprocessing=False)
    grid = {"guides__margin": [0.5, 1.0], "guides__n_guides": [2, 4]}
    return GridSearchCV(est, grid, cv=2)


def test_grid_search_on_a_local_cluster_equals_the_sequential_one():
    data = make_instances(n_images=4, shape=(48, 48), random_state=0)
    sequential = search().set_params(n_jobs=1).fit(data.images, data.labels)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as tasks:
            spread = search().set_params(n_jobs=-1).fit(data.images, data.labels)
    assert len(tasks.data) >= 8  # the 4 x 2 fits ran on the workers
    scores = sequential.cv_results_["mean_test_score"]
    assert (scores == scores.max()).sum() == 1  # a unique best: agreeing on it is not a tie-break
    assert spread.best_params_ == sequential.best_params_
    np.testing.assert_array_equal(spread.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"])
    assert spread.best_estimator_.predict(data.images[:1])[0].shape == (48, 48)
