"""Fuzz harmonic_seg's public API and command line with malformed inputs.

Usage::

    python benchmarks/fuzz.py --budget 60 --seed 0 --json benchmarks/results/fuzz.json

Cases (``_fuzz_generators.py``, with the helpers of ``_fuzz_cases.py``) call HarmonicSegmenter
fit/predict/score/save/load with tiny settings, GuideFunctionFitter, the metrics, the readers and
writers of ``harmonic_seg.io``, the post-processing, the torch clustering and inference functions,
and the command line (``harmonic_seg.cli.main`` in process, and every 25th case ``python -m
harmonic_seg`` in a child process), with wrong types, shapes and dtypes, NaN and infinity, empty and
mismatched lists, negative, huge and boolean parameters, missing and damaged files and existing
output paths. Case ``i`` is drawn from ``(seed, i)`` alone; cases run in order until the budget is
spent.

Every outcome is classified:

* ``accepted``: the call returned;
* ``clear``: a ValueError, TypeError or a path error (FileNotFoundError, FileExistsError,
  IsADirectoryError, NotADirectoryError) raised by a ``raise`` statement of harmonic_seg,
  scikit-learn's parameter validation or argparse, or a command line exit status 2 with its
  one-line message;
* ``deep``: any other exception, or one whose last traceback frame is not such a ``raise``
  (an error from inside torch, numpy, the standard library, or a Python operation that failed);
  for the command line, the same test applied to the error behind its exit status 2;
* ``traceback``: the command line let an exception out (a traceback on the terminal);
* ``hang``: the case ran longer than ``--case-timeout`` seconds;
* ``lost``: a file of the case's folder that the case did not ask to replace changed or
  disappeared (each case runs in a fresh folder of inputs, a model and sentinel files), or a
  command that succeeded did not write one of its outputs;
* ``skipped``: the case's own code failed before it reached harmonic_seg (say, ``np.stack`` of
  ragged lists); such a case tests nothing and counts apart.

Cases run one after the other in a worker process (one torch thread, address space limited by
``--memory-mb``); a hang kills the worker and a new one takes over. The exit status is 1 if any
case was deep, a traceback, a hang or lost a file, else 0. ``--repro I`` runs case I alone, in
this process, and prints its code and traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _fuzz_cases as cases  # noqa: E402
from _fuzz_generators import generate  # noqa: E402

CLEAR_TYPES = (ValueError, TypeError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
FAILURES = ("deep", "traceback", "hang", "lost")
OUTCOMES = ("accepted", "clear", *FAILURES, "skipped")
LABELS = {"tried": "inputs tried", "accepted": "accepted", "clear": "clear errors", "deep": "deep crashes",
          "traceback": "tracebacks", "hang": "hangs", "lost": "lost files",
          "skipped": "skipped"}
_HARNESS_FILES = ("_fuzz_cases.py", "fuzz.py", "<fuzz case")


# ------------------------------------------------------------------------------------ classification
def _owner_dirs():
    import harmonic_seg
    import sklearn

    return (str(Path(harmonic_seg.__file__).parent) + os.sep, str(Path(sklearn.__file__).parent) + os.sep,
            str(Path(argparse.__file__)))


class CLITraceback(Exception):
    """The command line let an exception out."""


class DeepCLI(Exception):
    """The command line exited with status 2, but the error behind it was deep."""

    def __init__(self, inner):
        super().__init__(f"{type(inner).__name__}: {inner}")
        self.inner = inner


class CLIExit(Exception):
    """The command line refused its input: a non-zero exit status with a message (a clear error)."""


class CaseHang(Exception):
    """A child process of a case ran past its time."""


def _last_frame(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    return frames[-1] if frames else None


def _where(frame):
    """``file:line`` of a frame, the file relative to the folder of its package."""
    if frame is None:
        return "?"
    roots = sorted({p for p in sys.path if p and os.path.isdir(p)} | {str(HERE.parent)}, key=len, reverse=True)
    name = frame.filename
    for root in roots:
        if name.startswith(root.rstrip(os.sep) + os.sep):
            name = name[len(root.rstrip(os.sep)) + 1:]
            break
    return f"{name}:{frame.lineno}"


#: Source lines of the library's modules as they were imported (files edited during a run keep their old lines).
_SOURCE = {}


def pin_sources():
    """Remember the source of every loaded harmonic_seg module."""
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None) or ""
        if f.endswith(".py") and os.sep + "harmonic_seg" + os.sep in f and f not in _SOURCE:
            with contextlib.suppress(OSError):
                _SOURCE[f] = Path(f).read_text(encoding="utf-8").splitlines()


def _is_raise(frame):
    """Whether the frame's line is a ``raise`` statement (a deliberate error), not a failed operation."""
    if frame.filename not in _SOURCE:
        pin_sources()
    lines = _SOURCE.get(frame.filename)
    if lines is not None and 0 < frame.lineno <= len(lines):
        line = lines[frame.lineno - 1].strip()
    else:
        line = (frame.line or "").strip()
    return line.startswith("raise ") or line == "raise"


def classify(exc, clear_types=CLEAR_TYPES):
    """``(outcome, frame)`` of an exception raised by a case."""
    if isinstance(exc, cases.LostOutput):
        return "lost", _last_frame(exc)
    if isinstance(exc, CLITraceback):
        return "traceback", _last_frame(exc.__cause__) if exc.__cause__ else None
    if isinstance(exc, CaseHang):
        return "hang", None
    if isinstance(exc, CLIExit):
        return "clear", None
    if isinstance(exc, DeepCLI):
        return "deep", _last_frame(exc.inner)
    frame = _last_frame(exc)
    library = _owner_dirs()[:2]  # harmonic_seg, and scikit-learn, which validates the estimators' parameters
    if frame is None or any(m in frame.filename for m in _HARNESS_FILES) or not any(
        f.filename.startswith(library) for f in traceback.extract_tb(exc.__traceback__)
    ):  # the case's own code failed before it reached harmonic_seg
        return "skipped", frame
    owned = frame.filename.startswith(_owner_dirs())
    if isinstance(exc, clear_types) and owned and _is_raise(frame):
        return "clear", frame
    return "deep", frame


# -------------------------------------------------------------------------------- command line helpers
def cli(argv):
    """``harmonic_seg.cli.main(argv)`` in this process: its exit status 0, or CLIExit, DeepCLI, CLITraceback."""
    import harmonic_seg.cli as hcli

    inner, saved = [], {}

    def wrap(f):
        def wrapper(*a, **k):
            try:
                return f(*a, **k)
            except BaseException as exc:
                inner.append(exc)
                raise

        return wrapper

    for name in dir(hcli):
        if name.startswith("cmd_") and callable(getattr(hcli, name)):
            saved[name] = getattr(hcli, name)
            setattr(hcli, name, wrap(saved[name]))
    err = io.StringIO()
    try:
        try:
            with contextlib.redirect_stderr(err):
                rc = hcli.main(list(argv))
        except SystemExit as exc:  # argparse's usage errors (status 2) and --help (0)
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except Exception as exc:
            raise CLITraceback(f"{type(exc).__name__}: {exc}") from exc
    finally:
        for name, f in saved.items():
            setattr(hcli, name, f)
    if rc != 0 and inner:
        cli_errors = tuple(getattr(hcli, n) for n in ("CLIError",) if hasattr(hcli, n))  # its own one-line errors
        outcome, _ = classify(inner[-1], CLEAR_TYPES + cli_errors)
        if outcome != "clear":
            raise DeepCLI(inner[-1])
    if rc != 0:
        lines = err.getvalue().strip().splitlines()
        raise CLIExit(f"exit status {rc}: {lines[-1] if lines else '(no message)'}")
    return rc


def make_cli_subprocess(timeout):
    def cli_subprocess(argv):
        """``python -m harmonic_seg *argv`` in a child process; its exit status."""
        try:
            rc, stderr = cases.run_cli_subprocess(argv, timeout)
        except subprocess.TimeoutExpired:
            raise CaseHang(f"python -m harmonic_seg {' '.join(argv)} ran past {timeout} s") from None
        if "Traceback (most recent call last)" in stderr:
            raise CLITraceback(stderr.strip().splitlines()[-1])
        if rc not in (0, 2):
            raise DeepCLI(RuntimeError(f"exit status {rc}: {stderr.strip()[-300:]}"))
        if rc != 0:
            lines = stderr.strip().splitlines()
            raise CLIExit(f"exit status {rc}: {lines[-1] if lines else '(no message)'}")
        return rc

    return cli_subprocess


# ---------------------------------------------------------------------------------------- one case
def run_case(case, base_ns, workroot, fixtures, *, keep_traceback=False):
    """Run one case in a fresh folder; its result record."""
    folder = Path(workroot) / f"case_{case['index']}"
    shutil.rmtree(folder, ignore_errors=True)
    cases.make_case_dir(folder, fixtures)
    before = cases.snapshot(folder, fixtures)
    released = {str(folder / p) for p in case["released"]}
    ns = dict(base_ns)
    pkg_logger = logging.getLogger("harmonic_seg")
    handlers, level = list(pkg_logger.handlers), pkg_logger.level
    cwd = os.getcwd()
    out = io.StringIO()
    outcome, frame, error, tb = "accepted", None, None, None
    t0 = time.perf_counter()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(case["code"], f"<fuzz case {case['index']}>", "exec"), ns)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 -- every outcome is recorded
        outcome, frame = classify(exc)
        shown = exc.inner if isinstance(exc, DeepCLI) else exc
        error = f"{type(shown).__name__}: {shown}"[:400]
        if outcome != "clear" or keep_traceback:
            chain = shown.__cause__ if isinstance(exc, CLITraceback) and exc.__cause__ else shown
            tb = "".join(traceback.format_exception(chain)[-8:])[-3000:]
    finally:
        os.chdir(cwd)
        pkg_logger.handlers[:] = handlers
        pkg_logger.setLevel(level)
    seconds = time.perf_counter() - t0
    after = cases.snapshot(folder, fixtures)
    lost = sorted(os.path.relpath(p, folder if p.startswith(str(folder)) else fixtures)
                  for p, h in before.items() if p not in released and after.get(p) != h)
    if lost:
        outcome = "lost"
    shutil.rmtree(folder, ignore_errors=True)
    return {"index": case["index"], "family": case["family"], "outcome": outcome, "code": case["code"],
            "error": error, "where": _where(frame) if frame is not None else None, "lost": lost,
            "seconds": round(seconds, 3), "traceback": tb}


def _limit_memory(mb):
    if mb:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))


def _base_namespace(fixtures, case_timeout):
    ns = cases.namespace(fixtures)
    ns.update(cli=cli, cli_subprocess=make_cli_subprocess(max(5, case_timeout - 5)))
    return ns


def worker_main(args):
    """Read case indices on stdin, write one JSON line when a case starts and one with its result."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # whatever a case prints on the C level stays off the protocol
    _limit_memory(args.memory_mb)
    import torch

    torch.set_num_threads(1)
    fixtures = cases.build_fixtures(args.fixtures)
    ns = _base_namespace(fixtures, args.case_timeout)
    import harmonic_seg.cli  # noqa: F401  (imported now, so that its source is pinned with the rest)

    pin_sources()
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        index = int(line)
        case = generate(args.seed, index)
        proto.write(json.dumps({"start": index}) + "\n")
        torch.set_num_threads(1)
        proto.write(json.dumps(run_case(case, ns, args.workroot, fixtures)) + "\n")


# --------------------------------------------------------------------------------------- the driver
class Worker:
    """A worker process and a line reader with a timeout on its output."""

    def __init__(self, args, fixtures, workroot, log):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--seed", str(args.seed),
               "--fixtures", str(fixtures), "--workroot", str(workroot), "--memory-mb", str(args.memory_mb),
               "--case-timeout", str(args.case_timeout)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                     start_new_session=True)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def readline(self, timeout):
        """The next JSON line, None on timeout, "died" when the worker is gone."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.sel.select(left):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return "died"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, index):
        self.proc.stdin.write(f"{index}\n".encode())
        self.proc.stdin.flush()

    def kill(self):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _failed_start(case, outcome, error):
    return {"index": case["index"], "family": case["family"], "outcome": outcome, "code": case["code"],
            "error": error, "where": None, "lost": [], "seconds": None, "traceback": None}


def fuzz(args, log=subprocess.DEVNULL):
    """Run cases until the budget is spent; the list of results."""
    t0 = time.monotonic()
    workroot = Path(tempfile.mkdtemp(prefix="harmonic_seg_fuzz_"))
    fixtures = workroot / "fixtures"
    results, worker, index = [], None, args.start
    try:
        while time.monotonic() - t0 < args.budget and (args.max_cases is None or len(results) < args.max_cases):
            if worker is None:
                worker = Worker(args, fixtures, workroot, log)
                ready = worker.readline(600)
                if not isinstance(ready, dict) or not ready.get("ready"):
                    raise RuntimeError("the fuzz worker did not start (run with --log FILE to see why)")
            case = generate(args.seed, index)
            worker.send(index)
            started = worker.readline(60)
            result = worker.readline(args.case_timeout) if isinstance(started, dict) else started
            if result is None:
                result = _failed_start(case, "hang", f"no result after {args.case_timeout} s")
            elif result == "died":
                result = _failed_start(case, "deep", f"the worker process died (exit status {worker.proc.wait()})")
            if result["outcome"] in ("hang", "deep") and result["seconds"] is None:
                worker.kill()
                worker = None
            results.append(result)
            if args.verbose:
                print(f"{index:5d} {result['family']:<14} {result['outcome']:<9} {result['error'] or ''}"[:160])
            index += 1
    finally:
        if worker is not None:
            worker.proc.stdin.close()
            worker.kill()
        shutil.rmtree(workroot, ignore_errors=True)
    return results, time.monotonic() - t0


def summarize(results):
    counts = {"tried": len(results), **{k: 0 for k in OUTCOMES}}
    families = {}
    for r in results:
        counts[r["outcome"]] += 1
        families.setdefault(r["family"], {k: 0 for k in OUTCOMES})[r["outcome"]] += 1
    return counts, families


def report(results, wall, args):
    counts, families = summarize(results)
    print(f"harmonic_seg fuzz: seed {args.seed}, {counts['tried']} inputs in {wall:.0f} s "
          f"(budget {args.budget:g} s, case timeout {args.case_timeout:g} s)")
    for key in ("tried", "accepted", "clear", "deep", "traceback", "hang", "lost", "skipped"):
        if key != "skipped" or counts[key]:
            print(f"  {LABELS[key]:<15} {counts[key]:5d}")
    failures = [r for r in results if r["outcome"] in FAILURES]
    groups = {}
    for r in failures:
        groups.setdefault(signature(r), []).append(r)
    if failures:
        print(f"{len(groups)} distinct failures (outcome, error type, place; python benchmarks/fuzz.py --repro INDEX "
              f"--seed {args.seed} replays a case):")
    for rs in groups.values():
        r = rs[0]
        more = f" (and {len(rs) - 1} more: cases {', '.join(str(x['index']) for x in rs[1:6])}" + (
            ", ...)" if len(rs) > 6 else ")") if len(rs) > 1 else ""
        print(f"  [{r['outcome']}] case {r['index']}{more} ({r['family']}): {r['error'] or ''}"[:300]
              + (f" at {r['where']}" if r["where"] else "") + (f"; lost {r['lost']}" if r["lost"] else ""))
        print("      " + r["code"].replace("\n", "\n      "))
    return counts, families, failures


def signature(result):
    """What makes two failures the same: outcome, error type and the place it was raised."""
    error_type = (result["error"] or "").split(":", 1)[0]
    return result["outcome"], error_type, result["where"] or result["family"]


def repro(args):
    """Run one case here and print everything about it."""
    _limit_memory(args.memory_mb)
    import torch

    torch.set_num_threads(1)
    case = generate(args.seed, args.repro)
    print(f"case {args.repro} of seed {args.seed} ({case['family']}):\n    " + case["code"].replace("\n", "\n    "))
    workroot = Path(tempfile.mkdtemp(prefix="harmonic_seg_fuzz_"))
    try:
        fixtures = cases.build_fixtures(workroot / "fixtures")
        result = run_case(case, _base_namespace(fixtures, args.case_timeout), workroot, fixtures,
                          keep_traceback=True)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    if result["traceback"]:
        print(result["traceback"])
    print(f"outcome: {result['outcome']}" + (f" ({result['error']} at {result['where']})" if result["error"] else "")
          + (f"; lost {result['lost']}" if result["lost"] else ""))
    return 0 if result["outcome"] not in FAILURES else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--budget", type=float, default=60.0, help="seconds; no case starts after it (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write counts and failures to this file (not replaced unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace --json if it exists")
    p.add_argument("--case-timeout", type=float, default=30.0, help="seconds before a case counts as a hang")
    p.add_argument("--memory-mb", type=int, default=4096, help="address space limit of the worker (0: none)")
    p.add_argument("--start", type=int, default=0, help="index of the first case")
    p.add_argument("--max-cases", type=int, default=None)
    p.add_argument("--repro", type=int, default=None, metavar="INDEX", help="run case INDEX alone and show it")
    p.add_argument("--show", type=int, default=None, metavar="N", help="print the code of the first N cases")
    p.add_argument("--log", help="append the worker's stderr to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fixtures", help=argparse.SUPPRESS)
    p.add_argument("--workroot", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.show is not None:
        for i in range(args.start, args.start + args.show):
            c = generate(args.seed, i)
            print(f"# {i} ({c['family']})\n{c['code']}")
        return 0
    if args.repro is not None:
        return repro(args)
    if args.json and Path(args.json).exists() and not args.overwrite:
        p.error(f"{args.json} exists; pass --overwrite to replace it")
    with open(args.log, "a") if args.log else contextlib.nullcontext(subprocess.DEVNULL) as log:
        results, wall = fuzz(args, log)
    counts, families, failures = report(results, wall, args)
    if args.json:
        from _common import machine

        payload = {
            "command": "python benchmarks/fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "seed": args.seed, "budget_s": args.budget, "case_timeout_s": args.case_timeout,
            "wall_s": round(wall, 1), "counts": counts, "by_family": families,
            "failures": [{k: r[k] for k in ("index", "family", "outcome", "error", "where", "lost", "code")}
                         for r in failures],
            "machine": machine(),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
