"""Benchmark of the training sampler: the numpy side of every training step.

A training minibatch of ``HarmonicSegmenter.fit`` is drawn by
:class:`harmonic_seg.nn.data.CropSampler`: an image is scaled and flipped as a
whole, the instances' embeddings are computed on the whole augmented frame (an
instance's embedding is the mean of the guides over all its pixels) and a crop
is taken. This script times one minibatch of the recipes of ``reproduce.py``
(real training images, the recipe's ``scale``, crop size and batch size, 12
guides) two ways, alternately in one run:

* ``full frame``: the previous implementation: the N guide maps evaluated on
  every pixel of the augmented frame, N weighted ``bincount`` calls, the target
  map of the whole frame gathered and then cropped;
* ``library``: the current sampler: guide sums per horizontal run of one label
  (prefix sums of the separable guides), the target looked up in the crop only.

Both give the same crops (checked here on every data set before timing).
``--steps K`` also times K whole training steps with each sampler (the
recipe's network, depth 4, widths 16..256; minibatch, forward, loss, backward,
Adam step; ``--amp`` in bfloat16 autocast as ``HarmonicSegmenter(amp=True)``
on a CPU), alternately, so that the sampler's share of a step is measured, not
inferred. Prints a markdown table and writes JSON to ``--out``. Needs
``../shared/data``.

Examples
--------
python benchmarks/bench_sampler.py --repeats 30
python benchmarks/bench_sampler.py cvppp_a1 bbbc010 --steps 20 --amp --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import machine, write_json  # noqa: E402

from harmonic_seg.guides import guide_maps, random_guides  # noqa: E402
from harmonic_seg.nn.augment import random_crop_window, random_scale_flip  # noqa: E402
from harmonic_seg.nn.data import CropSampler, crop_sample  # noqa: E402
from harmonic_seg.preprocessing import percentile_normalize, rescale_training_set, to_channels_first  # noqa: E402

#: (scale, crop size, batch size) of the recipes in reproduce.py
RECIPES = {"cvppp_a1": (0.5, 192, 4), "bbbc010": (0.5, 192, 4), "ctc_dic_c2dh_hela": (0.25, 128, 4)}


def full_frame_target(labels, guides):
    """The previous target computation: every guide on every pixel, then a gather of the whole frame."""
    maps = guide_maps(guides, labels.shape, dtype=np.float64)
    flat = labels.ravel()
    n_bins = int(flat.max()) + 1
    counts = np.bincount(flat, minlength=n_bins)
    sums = np.stack([np.bincount(flat, weights=m.ravel(), minlength=n_bins) for m in maps], axis=1)
    table = np.zeros_like(sums)
    present = counts > 0
    table[present] = sums[present] / counts[present, None]
    table[0] = 0.0
    return np.ascontiguousarray(np.moveaxis(table.astype(np.float32)[labels], -1, 0))


class FullFrameSampler(CropSampler):
    """CropSampler with the previous per-sample target computation (same random draws).

    Without rotations, as the recipes train (``rotate=False``).
    """

    def sample(self, rng):
        i = int(rng.choice(len(self.images), p=self.weights))
        img, lab, ign = random_scale_flip(
            self.images[i], self.labels[i], self._ignore(i), rng, self.scale_range, self.flips
        )
        target = full_frame_target(lab, self.guides)
        corner = random_crop_window(lab.shape, self.crop_size, rng)
        return crop_sample(img, lab, ign, target, corner, self.crop_size)


def training_set(name, scale):
    from train_embedding import load

    truth = "silver" if name == "ctc_dic_c2dh_hela" else "gold"  # the recipes' training truth
    data = load(name, "train", truth)
    chw = [to_channels_first(percentile_normalize(im)) for im in data.images]  # as HarmonicSegmenter.fit
    labels = [np.asarray(lab, dtype=np.int64) for lab in data.labels]
    return rescale_training_set(chw, labels, data.ignore, scale)


def time_batches(sampler, batch_size, repeats, seed):
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(repeats):
        sampler.batch(rng, batch_size)
    return (time.perf_counter() - t0) / repeats


def time_steps(sampler, batch_size, steps, amp, seed):
    """Seconds per whole training step (the Trainer's inner loop) with ``sampler``."""
    import torch

    from harmonic_seg.nn.losses import harmonic_loss
    from harmonic_seg.nn.unet import HarmonicUNet

    torch.manual_seed(0)
    net = HarmonicUNet(sampler.images[0].shape[0], sampler.guides.n_guides, sampler.guides, depth=4, base_width=16)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)

    def step():
        img, tgt, lab, ign, org = (torch.from_numpy(np.ascontiguousarray(a)) for a in sampler.batch(rng, batch_size))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            emb, logit = net(img, org)
        loss, _ = harmonic_loss(emb, tgt, logit, lab, ign)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datasets", nargs="*", help=f"any of {list(RECIPES)} (default: all)")
    p.add_argument("--repeats", type=int, default=30, help="minibatches timed per method and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    p.add_argument("--steps", type=int, default=0, help="also time this many whole training steps per method and round")
    p.add_argument("--amp", action="store_true", help="the training steps in bfloat16 autocast")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the training steps")
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_sampler.json"))
    args = p.parse_args(argv)
    unknown = sorted(set(args.datasets) - set(RECIPES))
    if unknown:
        p.error(f"unknown data set(s) {unknown}; choose from {list(RECIPES)}")

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = []
    for name in args.datasets or list(RECIPES):
        scale, crop, batch = RECIPES[name]
        images, labels, ignore = training_set(name, scale)
        guides = random_guides(12, labels[0].shape, random_state=0)
        new = CropSampler(images, labels, guides, ignore, crop)
        old = FullFrameSampler(images, labels, guides, ignore, crop)
        a, b = new.batch(np.random.default_rng(1), batch), old.batch(np.random.default_rng(1), batch)
        for x, y in zip(a, b):  # the same crops, targets to float32 rounding
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
        # alternately, the order swapped every round (ABBA), so that neither method always runs second
        times = {"full frame": [], "library": []}
        step_times = {"full frame": [], "library": []}
        for r in range(args.rounds):
            order = [("full frame", old), ("library", new)][:: 1 if r % 2 == 0 else -1]
            for key, sampler in order:
                times[key].append(time_batches(sampler, batch, args.repeats, r))
            for key, sampler in order if args.steps else ():
                step_times[key].append(time_steps(sampler, batch, args.steps, args.amp, r))
        med = {k: float(np.median(v)) for k, v in times.items()}
        step_med = {k: float(np.median(v)) for k, v in step_times.items() if v}
        row = {
            "dataset": name, "scale": scale, "crop_size": crop, "batch_size": batch, "n_images": len(images),
            "frame_shape": list(labels[0].shape), "seconds_per_batch": med, "rounds": times,
            "speedup": med["full frame"] / med["library"],
            "step_speedup_per_round": [a / b for a, b in zip(step_times["full frame"], step_times["library"])],
            "seconds_per_step": step_med, "step_rounds": step_times, "steps": args.steps, "amp": args.amp,
        }
        results.append(row)
        print(f"{name}: full frame {1e3 * med['full frame']:.1f} ms, library {1e3 * med['library']:.1f} ms "
              f"per batch of {batch} ({row['speedup']:.2f}x)", flush=True)
        if step_med:
            per_round = ", ".join(f"{x:.2f}" for x in row["step_speedup_per_round"])
            print(f"  training step{' (bfloat16)' if args.amp else ''}: full frame {step_med['full frame']:.3f} s, "
                  f"library {step_med['library']:.3f} s ({step_med['full frame'] / step_med['library']:.3f}x; "
                  f"per round {per_round})", flush=True)

    print("\n| data set (recipe) | first image's frame | full frame (ms / batch) | library (ms / batch) | speed-up |")
    print("|---|---|---|---|---|")
    for r in results:
        s = r["seconds_per_batch"]
        print(f"| {r['dataset']} (scale {r['scale']}, crop {r['crop_size']}, batch {r['batch_size']}) | "
              f"{r['frame_shape'][0]}x{r['frame_shape'][1]} | {1e3 * s['full frame']:.1f} | "
              f"{1e3 * s['library']:.1f} | {r['speedup']:.2f}x |")
    if args.steps:
        print("\n| data set | training step, full frame (s) | training step, library (s) | speed-up (per round) |")
        print("|---|---|---|---|")
        for r in results:
            t = r["seconds_per_step"]
            lo, hi = min(r["step_speedup_per_round"]), max(r["step_speedup_per_round"])
            print(f"| {r['dataset']} | {t['full frame']:.3f} | {t['library']:.3f} | "
                  f"{t['full frame'] / t['library']:.2f}x ({lo:.2f}-{hi:.2f}) |")
    write_json(args.out, {"results": results, "repeats": args.repeats, "rounds": args.rounds,
                          "threads": args.threads, "machine": machine()})


if __name__ == "__main__":
    main()
