"""The reproduction runner: one method on one data set, configured by a small file, one result per seed.

    python benchmarks/run.py defaults bbbc010                  # seeds of the config (0 1 2)
    python benchmarks/run.py recipe ctc_dic_c2dh_hela --seeds 0
    python benchmarks/run.py oracle cvppp_a1
    .cpenv/bin/python benchmarks/run.py cellpose bbbc010       # Cellpose in its own environment
    python benchmarks/run.py loss_harmonic                     # an ablation: the paper's loss, else the defaults
    python benchmarks/run.py --list                            # the configs there are

``benchmarks/configs/<config>/<data set>.json`` says everything a run depends on besides the seed:

* ``label``: the configuration's name in the documentation's tables;
* ``method``: ``"harmonic"`` (``HarmonicSegmenter``), ``"cellpose"`` (Cellpose 3.1 trained from
  scratch, :mod:`peer_cellpose`) or ``"oracle"`` (the target embeddings of the test label maps
  clustered as ``predict`` would: what a perfect network would give, :mod:`oracle`);
* ``train_truth``: DIC-HeLa trains on the silver truth of sequence 01 (``"silver"``), the others on
  the gold truth of their train split (``splits.json``);
* ``max_time`` and ``num_threads`` of the fit (harmonic; without ``max_time``, the ``epochs`` of
  ``params``), or ``budget_minutes`` of training (Cellpose);
* ``params``: the ``HarmonicSegmenter`` parameters the method sets; a nested estimator is a mapping of
  its own parameters (``"guides": {"init_range": [0, 10]}``, ``"network": {"base_width": 16}``), ``{}``
  is every default. Cellpose and the oracle take the keyword arguments of their functions;
* ``seeds``: the seeds ``--seeds`` defaults to.

Each seed writes ``benchmarks/results/<config>_<data set>_seed<k>.json`` (an existing file is kept
under a new name): the config, the command, the metric rows of the test split (the method with the
predicted foreground, the method with the given foreground where it has one, and the
connected-component floors), the fit's and the prediction's wall times and the machine.
``docs/render.py`` builds the results page's tables from these files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _common import machine, write_json

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
RESULTS = HERE / "results"
METHODS = ("harmonic", "cellpose", "oracle")
DATASETS = ("cvppp_a1", "bbbc010", "ctc_dic_c2dh_hela")


def read_config(config, dataset):
    """The settings of ``config`` for ``dataset`` (``benchmarks/configs/<config>/<dataset>.json``)."""
    path = CONFIGS / config / f"{dataset}.json"
    if not path.is_file():
        have = sorted(p.stem for p in (CONFIGS / config).glob("*.json")) if (CONFIGS / config).is_dir() else []
        raise SystemExit(f"no config {path.relative_to(HERE.parent)}; {config!r} has: {have or 'no data set'} "
                         f"(python benchmarks/run.py --list)")
    cfg = json.loads(path.read_text())
    if cfg.get("method") not in METHODS:
        raise SystemExit(f"{path}: method must be one of {METHODS}; got {cfg.get('method')!r}")
    if cfg.get("dataset", dataset) != dataset:
        raise SystemExit(f"{path} is for data set {cfg['dataset']!r}, not {dataset!r}")
    return cfg


def segmenter_params(params, seed):
    """``HarmonicSegmenter`` keyword arguments of a config's ``params``: each nested mapping becomes its
    estimator; the guides take the run's seed, as the defaults' guides do."""
    from harmonic_seg import Augmentation, GuideFunctionFitter, Loss, Network, Tiling
    from harmonic_seg.clustering import EmbeddingClusterer

    nested = {"guides": GuideFunctionFitter, "network": Network, "clustering": EmbeddingClusterer, "loss": Loss,
              "augmentation": Augmentation, "tiling": Tiling}
    out = {}
    for name, value in params.items():
        if name in nested and isinstance(value, dict):
            value = dict(value)
            if name == "guides":
                value.setdefault("random_state", seed)
            for key, v in value.items():  # a JSON list is a pair of numbers (init_range, ...)
                value[key] = tuple(v) if isinstance(v, list) else v
            value = nested[name](**value)
        elif isinstance(value, list):
            value = tuple(value)
        out[name] = value
    return out


def run_harmonic(cfg, dataset, seed, save_model=None):
    """Fit ``HarmonicSegmenter`` on the train split, score the test split; ``save_model``: a new folder to
    save the fitted model to (for re-clustering without retraining, ``recluster.py``)."""
    from reproduce import evaluate
    from train_embedding import load

    from harmonic_seg import HarmonicSegmenter

    truth = cfg.get("train_truth", "gold")
    train, test = load(dataset, "train", truth=truth), load(dataset, "test")
    params = dict(cfg.get("params", {}), random_state=seed)
    for name in ("max_time", "num_threads"):  # without max_time: params' epochs
        if cfg.get(name) is not None:
            params[name] = cfg[name]
    seg = HarmonicSegmenter(**segmenter_params(params, seed))
    print(f"{dataset} seed {seed}: fitting on {len(train)} images, max_time={cfg.get('max_time')} s", flush=True)
    t0 = time.perf_counter()
    seg.fit(train.images, train.labels, ignore=train.ignore)
    fit_s = time.perf_counter() - t0
    print(f"  fit took {fit_s:.1f} s ({seg.n_epochs_} epochs); scoring the {len(test)} test images", flush=True)
    if save_model is not None:
        seg.save(save_model)
    rows, _, _, predict_s = evaluate(seg, dataset, test)
    return dict(
        params=params, train_truth=truth, n_train=len(train), n_test=len(test), max_time=cfg.get("max_time"),
        fit_seconds=fit_s, predict_seconds=predict_s, time_budget=seg.time_budget_, n_epochs=seg.n_epochs_,
        scale=seg.scale_, base_width=seg.base_width_, loss=seg.loss if isinstance(seg.loss, str) else seg.loss.name,
        recovery=seg.recovery_, fitted_postprocessing=dict(
            bandwidth=seg.bandwidth_, metric=seg.metric_, min_size=seg.min_size_, core_fraction=seg.core_fraction_,
            fg_threshold=seg.fg_threshold_),
        rows=rows,
    )


def run_cellpose(cfg, dataset, seed, save_model=None):
    """Cellpose 3.1 from scratch on the same split (:func:`peer_cellpose.peer`)."""
    from peer_cellpose import peer

    t0 = time.perf_counter()
    result = peer(dataset, seed, train_truth=cfg.get("train_truth", "gold"), threads=cfg.get("num_threads"),
                  budget=cfg["budget_minutes"], **cfg.get("params", {}))
    result.update(fit_seconds=time.perf_counter() - t0 - result["predict_seconds"])
    return result


def run_oracle(cfg, dataset, seed, save_model=None):
    """The target embeddings of the test label maps, clustered (:func:`oracle.oracle`)."""
    from oracle import oracle

    t0 = time.perf_counter()
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.get("params", {}).items()}
    result = oracle(dataset, seed, **params)
    result.update(fit_seconds=time.perf_counter() - t0)
    return result


RUNNERS = {"harmonic": run_harmonic, "cellpose": run_cellpose, "oracle": run_oracle}


def run(config, dataset, seed, out=RESULTS, argv=None, max_time=None, save_models=None):
    """One run: the result file it wrote. ``max_time``: seconds instead of the config's budget;
    ``save_models``: a folder where a harmonic model is saved as ``<dataset>_seed<k>``."""
    cfg = read_config(config, dataset)
    if max_time is not None:
        budget = {"max_time": max_time} if cfg["method"] == "harmonic" else {"budget_minutes": max_time / 60}
        cfg = dict(cfg, **budget)
    save = None if save_models is None or cfg["method"] != "harmonic" else Path(save_models) / f"{dataset}_seed{seed}"
    result = RUNNERS[cfg["method"]](cfg, dataset, seed, save)
    argv = argv if argv is not None else [config, dataset, "--seeds", str(seed)]
    command = "python benchmarks/run.py " + " ".join(argv)
    head = dict(config=config, method=cfg["method"], dataset=dataset, seed=seed, settings=cfg, command=command)
    return write_json(Path(out) / f"{config}_{dataset}_seed{seed}.json", {**head, **result, "machine": machine()})


def list_configs():
    """``config: data sets`` lines of the configs there are."""
    lines = []
    for d in sorted(p for p in CONFIGS.iterdir() if p.is_dir()):
        files = sorted(d.glob("*.json"))
        label = json.loads(files[0].read_text()).get("label", "") if files else ""
        lines.append(f"{d.name}: {', '.join(p.stem for p in files)}" + (f" ({label})" if label else ""))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="a folder of benchmarks/configs (defaults, recipe, cellpose, oracle)")
    p.add_argument("datasets", nargs="*", help=f"data sets (default: every one the config has; {', '.join(DATASETS)})")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the config's seeds")
    p.add_argument("--max-time", type=float, default=None,
                   help="instead of the config's max_time (harmonic) or budget (Cellpose, in seconds): a smoke run")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files (default: %(default)s)")
    p.add_argument("--save-models", type=Path, default=None, metavar="DIR",
                   help="save each fitted harmonic model to DIR/<dataset>_seed<k> (a new folder per model)")
    p.add_argument("--list", action="store_true", help="list the configs and their data sets")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(list_configs()))
        return
    if args.config is None:
        p.error("give a config (python benchmarks/run.py --list)")
    datasets = args.datasets or [d for d in DATASETS if (CONFIGS / args.config / f"{d}.json").is_file()]
    for dataset in datasets:  # every config and model folder is checked before the first run starts
        cfg = read_config(args.config, dataset)
        for seed in args.seeds if args.seeds is not None else cfg.get("seeds", [0]):
            if args.save_models is not None and (args.save_models / f"{dataset}_seed{seed}").exists():
                p.error(f"--save-models: {args.save_models / f'{dataset}_seed{seed}'} exists; choose a new folder")
    for dataset in datasets:
        cfg = read_config(args.config, dataset)
        for seed in args.seeds if args.seeds is not None else cfg.get("seeds", [0]):
            argv_ = [args.config, dataset, "--seeds", str(seed)]
            argv_ += [] if args.max_time is None else ["--max-time", f"{args.max_time:g}"]
            path = run(args.config, dataset, seed, args.out, argv_, args.max_time, args.save_models)
            result = json.loads(Path(path).read_text())
            first = next(iter(result["rows"].items()))
            print(f"{args.config} {dataset} seed {seed}: {first[0]}: SBD {first[1]['SBD']:.3f}, "
                  f"COCO AP {first[1]['COCO AP']:.3f}; {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
