"""How much a better choice of the clustering parameters could add to a saved model: a diagnostic.

    python benchmarks/tuning_headroom.py ctc_dic_c2dh_hela out/model_hela_quarter

``fit`` tunes the clustering (distance, bandwidth, minimum size) on held-out
training images. This script runs the same grid search (``optimize_postprocessing``)
on the *test* split itself, once dropping the instances below the minimum
size and once merging them into the instance they touch (``merge_small``),
and prints the test scores of the three choices side by side. The test-tuned
rows show about how far any tuning on held-out images could take this network;
they are never results. They are not strict upper bounds: the grid's minimum
sizes are fractions of the median instance area of the labels it is tuned on,
so the held-out choice need not be in the test split's grid. When they are
close to the held-out choice, the clustering is not what limits the model,
the embeddings are. On BBBC010 (mask input) the tuning, like ``fit``'s, clusters
the predicted foreground and scores against the label maps, while the row
shown is the protocol's (the given mask, scored against the overlapping
per-worm masks). Results:
``benchmarks/out/headroom_<model folder name>.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import machine, write_json
from reproduce import OUT, evaluate, print_table, resolve_train_truth
from train_embedding import load

from harmonic_seg import HarmonicSegmenter


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["bbbc010", "bbbc010_brightfield", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("model", type=Path, help="folder written by reproduce.py --save-model")
    p.add_argument("--scoring", default="sbd", choices=["sbd", "accuracy"])
    p.add_argument("--train-truth", default=None, choices=["gold", "silver"],
                   help="DIC-HeLa: accepted for symmetry with retune.py; the test split does not depend on it")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    resolve_train_truth(p, args.dataset, args.train_truth)
    test = load(args.dataset, "test")
    # the protocol's row: the given mask is the input on BBBC010, the foreground is predicted elsewhere
    row = "harmonic, given foreground" if args.dataset == "bbbc010" else "harmonic, predicted foreground"

    rows, choices = {}, {}
    threads = {} if args.threads is None else {"num_threads": args.threads}
    seg = HarmonicSegmenter.load(args.model).set_params(**threads)
    name = "held-out choice (as saved)"
    choices[name] = dict(metric=seg.metric_, bandwidth=seg.bandwidth_, min_size=seg.min_size_,
                         merge_small=seg.clustering_.merge_small)
    rows[name] = evaluate(seg, args.dataset, test)[0][row]
    for merge in (False, True):  # each tuning replaces metric_, bandwidth_ and min_size_ of the one model
        seg.set_params(clustering__merge_small=merge)
        seg.optimize_postprocessing(test.images, test.labels, scoring=args.scoring)
        name = f"tuned on the test split (not a result), small instances {'merged' if merge else 'dropped'}"
        choices[name] = dict(metric=seg.metric_, bandwidth=seg.bandwidth_, min_size=seg.min_size_, merge_small=merge)
        rows[name] = evaluate(seg, args.dataset, test)[0][row]

    out = write_json(OUT / f"headroom_{args.model.resolve().name}.json",
                     dict(dataset=args.dataset, model=str(args.model), scoring=args.scoring, choices=choices,
                          rows=rows, machine=machine()))
    print(f"\n{args.dataset}, {args.model}, {row}; choices: {choices}\n")
    print_table(rows)
    print(f"\n{out}")


if __name__ == "__main__":
    main()
