"""The fuzzer (benchmarks/fuzz.py) finds no deep crash, traceback, hang or lost file.

It feeds the public API and the command line malformed inputs for a short budget and classifies every
outcome (see the script's docstring); this test runs it and fails with the list of failing cases, each
with the code that reproduces it (``python benchmarks/fuzz.py --repro INDEX --seed 0``).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "benchmarks" / "fuzz.py"
BUDGET_S = 40
CASE_TIMEOUT_S = 30

#: Failures tolerated while their fix is under way, by a piece of text of the failure ("outcome error
#: where code") -> the reason. Empty: every failure the fuzzer finds fails this test.
KNOWN = {}


def _known(failure):
    text = " ".join(str(failure.get(k) or "") for k in ("outcome", "error", "where", "code"))
    return next((why for key, why in KNOWN.items() if key in text), None)


@pytest.mark.slow
def test_fuzz_finds_no_failure(tmp_path):
    out = tmp_path / "fuzz.json"
    proc = subprocess.run(
        [sys.executable, str(FUZZ), "--budget", str(BUDGET_S), "--seed", "0", "--case-timeout", str(CASE_TIMEOUT_S),
         "--json", str(out)],
        capture_output=True, text=True, timeout=BUDGET_S + 10 * CASE_TIMEOUT_S, cwd=ROOT,
    )
    assert out.exists(), f"the fuzzer wrote no result (exit status {proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    counts = result["counts"]
    assert counts["tried"] >= 50, f"only {counts['tried']} cases ran in {BUDGET_S} s: {counts}"
    assert counts["clear"] > 0 and counts["accepted"] > 0, counts
    failures = result["failures"]
    lines = []
    for f in failures:
        why = _known(f)
        tag = f"known ({why})" if why else "NEW"
        lines.append(f"[{f['outcome']}] {tag} case {f['index']} ({f['family']}): {f['error']} at {f['where']}\n"
                     f"    {f['code']}")
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    assert not failures, f"{len(failures)} failing cases ({summary}):\n" + "\n".join(lines)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
