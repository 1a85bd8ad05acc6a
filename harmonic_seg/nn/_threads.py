"""How many CPU threads torch uses in fit, predict, tuning and clustering.

torch runs its CPU kernels on an OpenMP team of ``torch.get_num_threads()``
threads (by default one per core), and every operation ends at a barrier where
the team waits for its slowest thread. When another process holds one of the
cores, each operation waits for a time slice of the thread that shares that
core: operations of a fraction of a millisecond, such as the steps of the mean
shift, then take several milliseconds, and a clustering of seconds takes
minutes. The library therefore chooses the threads itself:

* **The network** (fit, predict, tuning): the smallest of torch's own setting
  (``torch.set_num_threads``, ``OMP_NUM_THREADS`` at start-up), the inner
  limits in force now (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the
  environment, which joblib sets in its worker processes, and
  ``threadpoolctl.threadpool_limits``) and the CPUs this process may use
  (affinity, cgroup quota; :func:`joblib.cpu_count`). The network's
  operations are large: a busy core slows them by a small factor (about 2 in
  the benchmark), not tenfold. The count does not depend on the machine's load at the time
  of the call, so that a fit or a prediction with the same ``random_state``
  gives the same result (the rounding of float sums depends on the threads).
* **The mean shift** (:func:`harmonic_seg.clustering.mean_shift`, the
  clustering of ``predict`` and of the tuning): one thread. It is a long loop
  of small operations, the case where a busy core costs most
  (``docs/benchmarks.md``, "Shared CPU"); on one thread its result does not
  depend on the machine's number of cores either.

An explicit thread count (``HarmonicSegmenter(num_threads=...)``,
``mean_shift(..., num_threads=...)``) replaces both choices. torch's setting is
changed only for the duration of a call and restored afterwards.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os

import torch

logger = logging.getLogger(__name__)

__all__ = ["default_num_threads", "torch_threads", "small_op_threads"]

#: Environment variables that bound torch's threads (joblib's loky workers set them).
_ENV_LIMITS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: The thread count chosen by an enclosing ``torch_threads(n)`` with an explicit ``n``.
_EXPLICIT = contextvars.ContextVar("harmonic_seg_explicit_threads", default=None)
#: The thread count set by an enclosing ``small_op_threads``, if any.
_SMALL_OPS = contextvars.ContextVar("harmonic_seg_small_op_threads", default=None)


def _env_limit():
    """Smallest positive integer among the thread-count environment variables (first value of a list), or None."""
    found = []
    for name in _ENV_LIMITS:
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            found.append(int(value))
    return min(found, default=None)


def _threadpoolctl_limit():
    """Smallest thread count of the OpenMP libraries that threadpoolctl controls (torch's kernels), or None.

    BLAS libraries are left out: numpy's OpenBLAS (``OPENBLAS_NUM_THREADS``) is not torch's.
    """
    try:
        from threadpoolctl import threadpool_info

        counts = [int(lib["num_threads"]) for lib in threadpool_info()
                  if lib.get("user_api") == "openmp" and lib.get("num_threads")]
    except Exception:  # noqa: BLE001 -- an inspection failure must not stop fit or predict
        return None
    return min((c for c in counts if c > 0), default=None)


def _usable_cpus():
    """CPUs this process may run on: affinity and cgroup quota (joblib's count), at least 1."""
    try:
        from joblib import cpu_count

        return max(1, int(cpu_count()))
    except Exception:  # noqa: BLE001
        return max(1, os.cpu_count() or 1)


def default_num_threads():
    """The CPU threads the library gives torch when ``num_threads`` is None.

    The smallest of torch's setting, the inner limits of the environment and
    of threadpoolctl and the CPUs this process may use (see the module
    docstring); at least 1.
    """
    parts = {
        "torch": torch.get_num_threads(),
        "environment": _env_limit(),
        "threadpoolctl": _threadpoolctl_limit(),
        "usable CPUs": _usable_cpus(),
    }
    n = max(1, min(v for v in parts.values() if v is not None))
    logger.debug("torch threads: %d (%s)", n, ", ".join(f"{k} {v}" for k, v in parts.items()))
    return n


@contextlib.contextmanager
def _set_torch_threads(n, *, force=False):
    """``torch.set_num_threads(n)`` for a block, restored after.

    Nothing is changed when ``torch.get_num_threads()`` is already ``n``, unless
    ``force``: torch reports the OpenMP count, which ``threadpool_limits``
    lowers, but its MKL keeps the count of the last ``torch.set_num_threads``
    (matrix products on two threads inside ``threadpool_limits(1)``); setting
    it again brings both to ``n``.
    """
    previous = torch.get_num_threads()
    if n == previous and not force:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        if previous != n:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def torch_threads(num_threads=None):
    """torch's CPU threads for the duration of a block.

    Parameters
    ----------
    num_threads : int or None, default=None
        Threads for everything in the block, the mean shift included; None:
        :func:`default_num_threads` for the network and one thread for the
        mean shift (:func:`small_op_threads`).
    """
    explicit = None if num_threads is None else int(num_threads)
    n = default_num_threads() if explicit is None else explicit
    token = _EXPLICIT.set(explicit)
    try:
        with _set_torch_threads(n):
            yield n
    finally:
        _EXPLICIT.reset(token)


@contextlib.contextmanager
def small_op_threads(num_threads=None, device=None):
    """torch's CPU threads for a loop of small operations (the mean shift).

    ``num_threads`` if given, else the explicit count of an enclosing
    :func:`torch_threads` or :func:`small_op_threads`, else 1. Nothing changes
    for a CUDA ``device``.
    """
    if device is not None and torch.device(device).type != "cpu":
        yield None
        return
    explicit = int(num_threads) if num_threads is not None else _EXPLICIT.get()
    n = 1 if explicit is None else explicit
    if _SMALL_OPS.get() == n:  # nested in a block that set n already (the assignment inside the mean shift)
        yield n
        return
    tokens = _EXPLICIT.set(explicit), _SMALL_OPS.set(n)  # nested calls follow this count
    try:
        with _set_torch_threads(n, force=True):
            yield n
    finally:
        _SMALL_OPS.reset(tokens[1])
        _EXPLICIT.reset(tokens[0])
