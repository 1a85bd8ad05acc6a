"""Re-tune the post-processing of a model saved by ``reproduce.py --save-model``, then score it again.

    python benchmarks/retune.py bbbc010 out/model_bbbc010_recipe --scoring accuracy
    python benchmarks/retune.py bbbc010 out/model_bbbc010_optlow --scoring sbd --pictures ../docs/images

The network is not retrained. ``HarmonicSegmenter.optimize_postprocessing``
searches the clustering parameters (distance, bandwidth 0.5-3 x eps, minimum
size) on the training images that ``fit`` held out for validation (never on
the test split), by ``--scoring``: ``sbd`` (what ``fit`` uses) or
``accuracy`` (TP / (TP + FP + FN) averaged over IoU 0.5:0.95, closer to COCO
AP); ``--scoring sbd`` on a model that ``fit`` tuned itself chooses what ``fit``
chose, so it also serves to draw pictures of a saved model (``--pictures``).
The search also tries core fractions (``core_fraction``, added on 2026-11-27);
``--no-core`` holds it to None, the grid of the models saved before, so that
the two are compared on the same network. With the best clustering it then tries the foreground
thresholds 0.3-0.7 (added on 2026-11-27, later); ``--no-threshold`` tries the configured
``fg_threshold`` alone, as the tuning did before (a model tuned since may have chosen another). When
another threshold is chosen, the test split is also scored at the configured one
(``rows_at_configured_threshold``: what the search without thresholds gives, on the same network).
The test split is then scored as ``reproduce.py`` scores it. Results:
``benchmarks/out/retune_<model folder name>_<scoring>[_merge][_nocore][_nothreshold].json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine, write_json
from reproduce import OUT, evaluate, print_table, resolve_train_truth, save_pictures
from sklearn.utils import check_random_state
from train_embedding import load

from harmonic_seg import HarmonicSegmenter


def held_out(seg, n_images):
    """Indices of the training images ``fit`` held out for validation.

    Models saved before ``validation_indices_`` was recorded get the split
    replayed from ``random_state`` exactly as ``HarmonicSegmenter.fit`` and
    ``Trainer.fit`` draw it.
    """
    if getattr(seg, "validation_indices_", None) is not None:
        return list(seg.validation_indices_)
    if not isinstance(seg.random_state, int):
        raise ValueError("the model records no validation images and has no integer random_state to replay them.")
    _, seed_net = check_random_state(seg.random_state).randint(0, 2**31 - 1, size=2)
    split_ss, _ = np.random.SeedSequence(int(seed_net)).spawn(2)
    n_val = min(max(1, int(round(seg.validation_fraction * n_images))), n_images - 1)
    return sorted(int(i) for i in np.random.default_rng(split_ss).permutation(n_images)[:n_val])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["bbbc010", "bbbc010_brightfield", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("model", type=Path, help="folder written by reproduce.py --save-model")
    p.add_argument("--scoring", default="accuracy", choices=["sbd", "accuracy"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--pictures", type=Path, default=None,
                   help="folder for pictures (image | truth | prediction | embedding) of test images")
    p.add_argument("--n-pictures", type=int, default=1)
    p.add_argument("--train-truth", default=None, choices=["gold", "silver"],
                   help="DIC-HeLa: the training frames the model was fitted on (default: the recipe's, silver)")
    p.add_argument("--merge-small", action="store_true",
                   help="tune and score with merge_small=True: fragments below min_size go to the instance they "
                   "touch instead of being dropped")
    p.add_argument("--no-core", action="store_true",
                   help="tune without core fractions (every foreground pixel seeks a mode), as before 2026-11-27")
    p.add_argument("--no-threshold", action="store_true",
                   help="try the configured foreground threshold (fg_threshold) alone, as before it was tuned")
    args = p.parse_args(argv)
    args.train_truth = resolve_train_truth(p, args.dataset, args.train_truth)

    seg = HarmonicSegmenter.load(args.model)
    saved_merge_small = seg.clustering_.merge_small
    if args.threads is not None:
        seg.set_params(num_threads=args.threads)
    if args.merge_small:
        seg.set_params(clustering__merge_small=True)
    grids = {}
    if args.no_core:
        seg.set_params(clustering__core_fraction=None)
        grids["core_fractions"] = (None,)
    if args.no_threshold:
        grids["fg_thresholds"] = ()  # the grid is then the configured threshold alone
    train, test = load(args.dataset, "train", truth=args.train_truth), load(args.dataset, "test")
    val = held_out(seg, len(train))
    before = dict(metric=seg.metric_, bandwidth=seg.bandwidth_, min_size=seg.min_size_,
                  core_fraction=seg.core_fraction_, fg_threshold=seg.fg_threshold_, merge_small=saved_merge_small)
    t0 = time.perf_counter()
    seg.optimize_postprocessing([train.images[i] for i in val], [train.labels[i] for i in val], scoring=args.scoring,
                                **grids)
    tune_s = time.perf_counter() - t0
    after = dict(metric=seg.metric_, bandwidth=seg.bandwidth_, min_size=seg.min_size_,
                 core_fraction=seg.core_fraction_, fg_threshold=seg.fg_threshold_, merge_small=seg.clustering_.merge_small)
    rows, shown, embedded, predict_s = evaluate(seg, args.dataset, test)
    at_configured = rows  # the test scores at the configured threshold, what the search gave before it tuned one
    if seg.fg_threshold_ != seg.clustering_.fg_threshold:
        tuned_threshold, seg.fg_threshold_ = seg.fg_threshold_, float(seg.clustering_.fg_threshold)
        at_configured = evaluate(seg, args.dataset, test, embedded)[0]  # the same embeddings
        seg.fg_threshold_ = tuned_threshold
    variant = f"{seg.module_.config.get('variant', 'sin')}_{args.model.resolve().name}"
    pictures = save_pictures(args.dataset, variant, test, shown, embedded, args.pictures, args.n_pictures)
    result = dict(
        dataset=args.dataset, model=str(args.model), scoring=args.scoring, merge_small=seg.clustering_.merge_small,
        validation_images=val,
        before=before, after=after, tune_seconds=tune_s, predict_seconds=predict_s,
        tuning_results=seg.tuning_results_, rows=rows, rows_at_configured_threshold=at_configured,
        pictures=pictures, machine=machine(),
    )
    tag = ("_merge" if args.merge_small else "") + ("_nocore" if args.no_core else "")
    tag += "_nothreshold" if args.no_threshold else ""
    out = write_json(OUT / f"retune_{args.model.resolve().name}_{args.scoring}{tag}.json", result)
    print(f"\n{args.dataset}, {args.model}: tuned by {args.scoring} on training images {val} in {tune_s:.0f} s: "
          f"{before} -> {after} (validation {args.scoring} "
          f"{max(r['score'] for r in seg.tuning_results_):.3f})\n")
    print_table(rows)
    if at_configured is not rows:
        print(f"\nat the configured foreground threshold {seg.clustering_.fg_threshold}:")
        print_table(at_configured)
    print(f"\n{out}")


if __name__ == "__main__":
    main()
