"""Benchmark of the embedding network: throughput, latency, parameters and FLOPs.

Reports, for the default configuration (depth 4, widths 32..512) and the
paper-size configuration (depth 4, widths 64..512):

* training throughput in patches/s at 256x256 and 448x448 crops (forward,
  loss, backward, Adam step; batch size ``--batch-size``),
* inference time of one 512x512 image (eval mode, ``torch.inference_mode``),
* parameter count and FLOPs of one forward pass (``FlopCounterMode``; a
  multiply-add counts as 2 FLOPs) at each size,

on ``--device`` (cpu/cuda; ``--amp`` for float16 autocast on CUDA). Prints a
markdown table and writes JSON to ``--out``. ``--quick`` is a smoke run of a
few seconds: small sizes, one timed step, FLOPs still at the nominal sizes.

Examples
--------
python benchmarks/bench_network.py --device cpu --threads 2
python benchmarks/bench_network.py --device cuda --amp --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode

from harmonic_seg.guides import random_guides
from harmonic_seg.nn.losses import harmonic_loss
from harmonic_seg.nn.unet import HarmonicUNet

CONFIGS = {
    "default (d4, 32..512)": dict(depth=4, base_width=32),
    "paper (d4, 64..512)": dict(depth=4, base_width=64, max_width=512),
}
N_GUIDES = 12


def make_net(cfg, in_channels, device=None):
    guides = random_guides(N_GUIDES, (448, 448), random_state=0)
    if device is not None:
        with torch.device(device):
            return HarmonicUNet(in_channels, N_GUIDES, guides, **cfg)
    return HarmonicUNet(in_channels, N_GUIDES, guides, **cfg)


def flops(cfg, in_channels, size):
    """Forward FLOPs for a single (1, C, size, size) input, counted on the meta device."""
    net = make_net(cfg, in_channels, device="meta")
    x = torch.empty(1, in_channels, size, size, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x, torch.zeros(1, 2, device="meta"))
    return counter.get_total_flops()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(net, device, size, batch_size, amp, warmup, steps):
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    x = torch.randn(batch_size, net.in_channels, size, size, device=device)
    tgt = torch.randn(batch_size, N_GUIDES, size, size, device=device)
    lab = (torch.rand(batch_size, size, size, device=device) > 0.5).long()
    origin = torch.zeros(batch_size, 2, device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            emb, logit = net(x, origin)
        loss, _ = harmonic_loss(emb, tgt, logit, lab)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch_size * steps / (time.perf_counter() - t0)


def inference_time(net, device, size, amp, warmup, steps):
    net.eval()
    x = torch.randn(1, net.in_channels, size, size, device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        for _ in range(warmup):
            net(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            net(x)
        sync(device)
    return (time.perf_counter() - t0) / steps


def machine(device):
    info = dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                device=str(device))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed training steps / inference runs")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one step, batch 1")
    p.add_argument("--configs", nargs="*", default=None, help=f"subset of {list(CONFIGS)} (prefix match)")
    p.add_argument("--out", default="benchmarks/out/network.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    amp = bool(args.amp and device.type == "cuda")
    train_sizes, infer_size = (256, 448), 512
    timed_train, timed_infer = train_sizes, infer_size
    batch, steps, warmup = args.batch_size, args.steps, args.warmup
    if args.quick:
        timed_train, timed_infer, batch, steps, warmup = (64, 96), 128, 1, 1, 1
    names = [n for n in CONFIGS if not args.configs or any(n.startswith(c) for c in args.configs)]
    rows = []
    for name in names:
        cfg = CONFIGS[name]
        torch.manual_seed(0)
        net = make_net(cfg, args.in_channels).to(device)
        row = dict(config=name, **cfg, n_parameters=net.n_parameters())
        for nominal, size in zip(train_sizes, timed_train):
            row[f"train_patches_per_s_{nominal}"] = train_throughput(net, device, size, batch, amp, warmup, steps)
            row[f"gflops_fwd_{nominal}"] = flops(cfg, args.in_channels, nominal) / 1e9
        row[f"infer_s_{infer_size}"] = inference_time(net, device, timed_infer, amp, warmup, steps)
        row[f"gflops_fwd_{infer_size}"] = flops(cfg, args.in_channels, infer_size) / 1e9
        rows.append(row)
        del net
    result = dict(machine=machine(device), amp=amp, batch_size=batch, quick=args.quick,
                  timed_sizes=dict(train=list(timed_train), inference=timed_infer), results=rows)
    print(f"Machine: {result['machine']}")
    if args.quick:
        print(f"(quick smoke run: timings at train sizes {timed_train}, inference {timed_infer}; not comparable)")
    print(f"| config | params (M) | train 256 (patch/s) | train 448 (patch/s) | infer 512 (s) "
          f"| GFLOPs fwd 256 | GFLOPs fwd 448 | GFLOPs fwd 512 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['n_parameters'] / 1e6:.2f} | {r['train_patches_per_s_256']:.2f} | "
              f"{r['train_patches_per_s_448']:.2f} | {r['infer_s_512']:.3f} | {r['gflops_fwd_256']:.1f} | "
              f"{r['gflops_fwd_448']:.1f} | {r['gflops_fwd_512']:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
