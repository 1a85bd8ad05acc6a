"""Benchmark of the embedding network: throughput, latency, parameters and FLOPs.

Reports, for the configuration of the CPU recipes (depth 4, widths 16..256), the
library's default (depth 4, widths 32..512) and the paper's size (depth 4,
widths 64..512; ``--configs`` picks a subset by prefix):

* training throughput in patches/s at 256x256 and 448x448 crops (forward,
  loss, backward, Adam step; batch size ``--batch-size``),
* inference time of one 512x512 image (eval mode, ``torch.inference_mode``),
* parameter count and FLOPs of one forward pass (``FlopCounterMode``; a
  multiply-add counts as 2 FLOPs) at each size,

on ``--device`` (cpu/cuda). ``--amp`` also times every configuration with
autocast (float16 on CUDA, bfloat16 on CPU, as ``HarmonicSegmenter(amp=True)``)
right after float32, on the same network and inputs, and reports the ratio.
``--train-sizes`` changes the crop sizes (the CPU recipes use 128 and 192).
Prints a markdown table and writes JSON to ``--out``. ``--quick`` is a smoke run of a
few seconds: small sizes, one timed step, FLOPs still at the nominal sizes.

Examples
--------
python benchmarks/bench_network.py --device cpu --threads 2
python benchmarks/bench_network.py --device cuda --amp --batch-size 8
python benchmarks/bench_network.py --device cpu --threads 2 --amp --configs cpu --train-sizes 128 192
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
from harmonic_seg.nn import resolve_amp
from harmonic_seg.nn.losses import harmonic_loss
from harmonic_seg.nn.unet import HarmonicUNet

CONFIGS = {
    "cpu recipes (d4, 16..256)": dict(depth=4, base_width=16),
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


def train_throughput(net, device, size, batch_size, amp_dtype, warmup, steps):
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    amp = amp_dtype is not None
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    x = torch.randn(batch_size, net.in_channels, size, size, device=device)
    tgt = torch.randn(batch_size, N_GUIDES, size, size, device=device)
    lab = (torch.rand(batch_size, size, size, device=device) > 0.5).long()
    origin = torch.zeros(batch_size, 2, device=device)

    def step():
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp):
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


def inference_time(net, device, size, amp_dtype, warmup, steps):
    net.eval()
    x = torch.randn(1, net.in_channels, size, size, device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                enabled=amp_dtype is not None):
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
    p.add_argument("--amp", action="store_true",
                   help="also time autocast (float16 on CUDA, bfloat16 on CPU) beside float32")
    p.add_argument("--train-sizes", type=int, nargs=2, default=(256, 448), help="two training crop sizes")
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
    amp_dtype = resolve_amp(True, device) if args.amp else None
    precisions = {"": None, **({"_amp": amp_dtype} if amp_dtype is not None else {})}
    train_sizes, infer_size = tuple(args.train_sizes), 512
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
            for tag, dtype in precisions.items():  # the same network and inputs, one precision after the other
                row[f"train_patches_per_s_{nominal}{tag}"] = train_throughput(net, device, size, batch, dtype,
                                                                              warmup, steps)
            row[f"gflops_fwd_{nominal}"] = flops(cfg, args.in_channels, nominal) / 1e9
        for tag, dtype in precisions.items():
            row[f"infer_s_{infer_size}{tag}"] = inference_time(net, device, timed_infer, dtype, warmup, steps)
        row[f"gflops_fwd_{infer_size}"] = flops(cfg, args.in_channels, infer_size) / 1e9
        rows.append(row)
        del net
    result = dict(machine=machine(device), amp=str(amp_dtype).replace("torch.", "") if amp_dtype else None,
                  train_sizes=list(train_sizes), batch_size=batch, quick=args.quick,
                  timed_sizes=dict(train=list(timed_train), inference=timed_infer), results=rows)
    print(f"Machine: {result['machine']}")
    if args.quick:
        print(f"(quick smoke run: timings at train sizes {timed_train}, inference {timed_infer}; not comparable)")
    a, b = train_sizes
    for tag, dtype in precisions.items():
        print(f"\n{'float32' if dtype is None else str(dtype).replace('torch.', '') + ' autocast'}:")
        print(f"| config | params (M) | train {a} (patch/s) | train {b} (patch/s) | infer {infer_size} (s) "
              f"| GFLOPs fwd {a} | GFLOPs fwd {b} | GFLOPs fwd {infer_size} |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['config']} | {r['n_parameters'] / 1e6:.2f} | {r[f'train_patches_per_s_{a}{tag}']:.2f} | "
                  f"{r[f'train_patches_per_s_{b}{tag}']:.2f} | {r[f'infer_s_{infer_size}{tag}']:.3f} | "
                  f"{r[f'gflops_fwd_{a}']:.1f} | {r[f'gflops_fwd_{b}']:.1f} | {r[f'gflops_fwd_{infer_size}']:.1f} |")
    if len(precisions) > 1:
        print("\nautocast speed-up over float32 (same run):")
        for r in rows:
            ratios = [r[f"train_patches_per_s_{n}_amp"] / r[f"train_patches_per_s_{n}"] for n in train_sizes]
            ratios.append(r[f"infer_s_{infer_size}"] / r[f"infer_s_{infer_size}_amp"])
            print(f"| {r['config']} | train {a}: {ratios[0]:.2f}x | train {b}: {ratios[1]:.2f}x "
                  f"| inference {infer_size}: {ratios[2]:.2f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
