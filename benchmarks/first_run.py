"""Time the README's first command as a new user runs it: a fresh clone, a bare virtual environment.

    python benchmarks/first_run.py            # clones this repository's HEAD into a temporary folder

Creates ``python -m venv`` (nothing preinstalled), runs exactly
``pip install torch==2.13.0 -e . && harmonic-seg demo`` in the clone, and writes
``benchmarks/results/first_run.json``: the wall time of the whole command (installation included),
the exit status, the demo's printed scores and the machine. pip needs the package registry (or a
local wheel cache) for the dependencies.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, write_json

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "pip install torch==2.13.0 -e . && harmonic-seg demo"


def parse_scores(text):
    """The demo's printed ``name: value`` blocks (``harmonic:``, ``floor ...:``) as nested dicts."""
    blocks, current = {}, None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" ") and line.rstrip().endswith(":"):
            current = blocks.setdefault(line.strip()[:-1], {})
        elif line.startswith("  ") and current is not None:
            name, _, value = line.strip().rpartition(" ")
            try:
                current[name.strip()] = float(value)
            except ValueError:
                pass
        elif not line.startswith(" "):
            current = None
    return blocks


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "first_run.json")
    args = p.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "harmonic_seg"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=clone, check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(clone / ".venv")
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "-c", COMMAND], cwd=clone, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    scores = parse_scores(proc.stdout)
    row = dict(command=COMMAND, commit=commit, returncode=proc.returncode, wall_seconds=seconds,
               scores=scores, stdout_tail=proc.stdout[-3000:], stderr_tail=proc.stderr[-1500:], machine=machine())
    path = write_json(args.out, row)
    print(f"rc {proc.returncode}, {seconds:.0f} s -> {path}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
