"""torch's CPU threads in fit, predict and the mean shift (harmonic_seg.nn._threads).

Mechanics only, no timings: which thread count torch runs with inside the
library, that inner limits (environment, threadpoolctl) are honoured, and that
the caller's torch setting is back afterwards.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from threadpoolctl import threadpool_limits  # noqa: E402

import harmonic_seg.clustering._meanshift_ops as ops  # noqa: E402
import harmonic_seg.nn._threads as threads  # noqa: E402
import harmonic_seg.clustering.meanshift as meanshift_module  # noqa: E402
from harmonic_seg import HarmonicSegmenter, Network  # noqa: E402
from harmonic_seg.clustering.meanshift import MeanShift, mean_shift  # noqa: E402
from harmonic_seg.synthetic import make_instances  # noqa: E402

TINY = dict(network=Network(depth=2, base_width=4), epochs=1, steps_per_epoch=2, batch_size=2, crop_size=32,
            validation_fraction=0)


@pytest.fixture
def torch_two_threads():
    """torch set to 2 threads for the test, the caller's setting restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def idle_machine(monkeypatch):
    """Two usable CPUs, no inner limit in the environment: only what a test sets limits torch."""
    monkeypatch.setattr(threads, "_usable_cpus", lambda: 2)
    for name in threads._ENV_LIMITS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def shift_threads(monkeypatch):
    """Records torch's thread count at every call of the mean shift's shift steps."""
    seen = []
    original = ops._shift_seeds

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(meanshift_module, "_shift_seeds", spy)
    return seen


def _points():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(c, 0.05, (200, 3)) for c in (0.0, 1.0, 2.0)]).astype(np.float32)


# -------------------------------------------------------------------- mean shift
def test_mean_shift_runs_on_one_thread_and_restores_torch(torch_two_threads, shift_threads):
    centers, labels = mean_shift(_points(), 0.5)
    assert shift_threads == [1]
    assert torch.get_num_threads() == 2
    assert len(centers) == 3


def test_mean_shift_explicit_threads_honoured(torch_two_threads, shift_threads):
    mean_shift(_points(), 0.5, num_threads=2)
    est = MeanShift(bandwidth=0.5, num_threads=2).fit(_points())
    assert shift_threads == [2, 2]
    assert torch.get_num_threads() == 2
    assert est.get_params()["num_threads"] == 2


def test_assignment_follows_the_mean_shift_threads(torch_two_threads, monkeypatch):
    # the clustering of predict also assigns points to the modes outside the mean shift
    seen = []
    original = ops._assign_chunks
    monkeypatch.setattr(ops, "_assign_chunks", lambda *args: seen.append(torch.get_num_threads()) or original(*args))
    ops._assign(torch.zeros((5, 3)), torch.zeros((2, 3)), "euclidean")
    mean_shift(_points(), 0.5, num_threads=2)
    assert seen == [1, 2]
    assert torch.get_num_threads() == 2


def test_mean_shift_num_threads_checked():
    with pytest.raises(ValueError, match="num_threads"):
        mean_shift(_points(), 0.5, num_threads=0)
    with pytest.raises(TypeError, match="num_threads"):
        MeanShift(num_threads=1.5).fit(_points())


def test_mean_shift_restores_torch_after_an_error(torch_two_threads, monkeypatch):
    seen = []

    def boom(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("boom")

    monkeypatch.setattr(meanshift_module, "_shift_seeds", boom)
    with pytest.raises(RuntimeError, match="boom"):
        mean_shift(_points(), 0.5)
    assert seen == [1]
    assert torch.get_num_threads() == 2


# -------------------------------------------------------------- default choice
def test_default_follows_threadpoolctl(torch_two_threads, idle_machine):
    assert threads.default_num_threads() == 2
    with threadpool_limits(limits=1):
        assert threads.default_num_threads() == 1
        with threads.torch_threads(None) as n:
            assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("value, expected", [("1", 1), ("1,1", 1), ("8", 2), ("", 2), ("auto", 2), ("0", 2)])
def test_default_follows_omp_num_threads(torch_two_threads, idle_machine, monkeypatch, value, expected):
    # joblib's loky workers get OMP_NUM_THREADS = cores // n_jobs; torch only reads it at start-up
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert threads.default_num_threads() == expected


def test_default_ignores_blas_limits(torch_two_threads, idle_machine):
    # numpy's OpenBLAS is not torch's: OPENBLAS_NUM_THREADS=1 or a BLAS-only limit leaves torch alone
    with threadpool_limits(limits=1, user_api="blas"):
        assert threads.default_num_threads() == 2


def _mkl_max_threads():
    """MKL's thread count in torch's own MKL (statically linked), or skip where it cannot be read."""
    import ctypes
    import os

    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        return ctypes.CDLL(lib).mkl_get_max_threads()
    except (OSError, AttributeError):
        pytest.skip("torch's MKL is not reachable here")


def test_mean_shift_limits_torchs_mkl_under_threadpool_limits(torch_two_threads, monkeypatch):
    # after torch.set_num_threads(2), threadpool_limits(1) lowers torch's OpenMP count but not its MKL,
    # whose matrix products the mean shift runs; the mean shift sets both
    _mkl_max_threads()
    seen = []
    original = ops._shift_seeds

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), _mkl_max_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(meanshift_module, "_shift_seeds", spy)
    with threadpool_limits(limits=1):
        mean_shift(_points(), 0.5)
    assert seen == [(1, 1)]
    assert torch.get_num_threads() == 2


# ---------------------------------------------------------------- segmenter
@pytest.fixture(scope="module")
def tiny_data():
    d = make_instances(n_images=3, shape=(48, 48), n_instances=(3, 6), random_state=0)
    return d.images, d.labels


def _predict(seg, data):
    """Predict the first image with its true foreground, so that the mean shift always runs."""
    return seg.predict(data[0][:1], foreground=[data[1][0] > 0])


@pytest.fixture(scope="module")
def tiny_fitted(tiny_data):
    return HarmonicSegmenter(random_state=0, num_threads=1, **TINY).fit(*tiny_data)


@pytest.fixture
def forward_threads(tiny_fitted):
    """Records torch's thread count at every forward pass of the fitted network."""
    seen = []
    handle = tiny_fitted.module_.register_forward_pre_hook(lambda module, inputs: seen.append(torch.get_num_threads()))
    yield seen
    handle.remove()


def test_predict_default_honours_inner_limit_and_restores(
    tiny_fitted, tiny_data, torch_two_threads, idle_machine, forward_threads, shift_threads, monkeypatch
):
    seg = tiny_fitted.set_params(num_threads=None)
    _predict(seg, tiny_data)
    assert set(forward_threads) == {2} and set(shift_threads) == {1}
    assert torch.get_num_threads() == 2
    forward_threads.clear()
    shift_threads.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as in a joblib worker
    _predict(seg, tiny_data)
    assert set(forward_threads) == {1} and set(shift_threads) == {1}
    assert torch.get_num_threads() == 2


def test_predict_explicit_threads_used_everywhere(
    tiny_fitted, tiny_data, torch_two_threads, idle_machine, forward_threads, shift_threads
):
    with threadpool_limits(limits=1):  # an explicit count is used as given
        _predict(tiny_fitted.set_params(num_threads=2), tiny_data)
    assert set(forward_threads) == {2} and set(shift_threads) == {2}
    assert torch.get_num_threads() == 2


def test_user_setting_restored_after_fit_and_predict(tiny_data, idle_machine):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # more than the (patched) usable CPUs: the library uses 2, the user keeps 3
        seen = []
        seg = HarmonicSegmenter(random_state=0, **TINY)
        orig = threads._set_torch_threads

        def spy(n, **kwargs):
            seen.append(n)
            return orig(n, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(threads, "_set_torch_threads", spy)
            seg.fit(*tiny_data)
            assert torch.get_num_threads() == 3
            _predict(seg, tiny_data)
        assert torch.get_num_threads() == 3
        assert 2 in seen and 1 in seen  # the network on 2 threads, the mean shift on 1
    finally:
        torch.set_num_threads(before)
