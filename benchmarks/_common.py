"""Shared helpers of the benchmark scripts: machine description and output."""

import json
import os
import platform
from datetime import date
from pathlib import Path


def machine():
    """A short description of the machine a figure was measured on."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "date": date.today().isoformat(),
        # runnable processes averaged over the last minute when the figure was written: on 2 cores, a value
        # well above 2 means the times were measured beside other work
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:  # a script that measured an installation elsewhere (first_run.py) may run where the package is not importable
        import harmonic_seg

        info["harmonic_seg"] = harmonic_seg.__version__
    except ImportError:
        pass
    try:  # the vector instructions torch's CPU kernels use: AVX2 and AVX-512 runs may differ in the last digits
        import torch

        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cpu_avx512_bf16"] = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    except Exception:  # noqa: BLE001 -- a description of the machine must never lose a finished run's results
        pass
    return info


def write_json(path, payload):
    """Write ``payload`` to ``path``; an existing file there is kept, renamed ``<stem>-<k>.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        k = 1
        while (free := path.with_name(f"{path.stem}-{k}{path.suffix}")).exists():
            k += 1
        kept = path.rename(free)
        print(f"kept the previous {path.name} as {kept.name}")
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path


def git(*cmd, cwd):
    """``git *cmd`` in ``cwd``; its output, stripped."""
    import subprocess

    return subprocess.run(["git", *cmd], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def run_worker(script, tree, args):
    """``script --worker --expect-root tree *args`` in a fresh process with ``tree`` first on ``PYTHONPATH``:
    one measurement of the version checked out in ``tree``; the JSON its last output line holds."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(script).resolve()), "--worker", "--expect-root", str(tree), *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    if proc.returncode != 0:
        raise RuntimeError(f"the measurement in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
