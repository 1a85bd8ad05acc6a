"""Write the reference of the clustering's outputs (``clustering_reference.npz``).

Run with harmonic_seg at commit 0e9969b (the last version before the
clustering moved to :mod:`harmonic_seg.clustering`), from the repository
root::

    python tests/data/make_clustering_reference.py

It loads the version-1 model (``model_v1/``), predicts a few synthetic images
with several post-processing settings (set as fitted attributes, as tuning
would), tunes the post-processing on two of them, and clusters one synthetic
embedding with ``cluster_embeddings`` at several settings. Every label map
and score array goes into ``clustering_reference.npz`` beside this script;
``tests/clustering/test_reference.py`` checks that the current code gives the
same arrays, bit for bit. Do not rerun it with a later version: the point is
that the file was written by the old code.
"""

import json
from pathlib import Path

import numpy as np

from harmonic_seg import HarmonicSegmenter
from harmonic_seg.synthetic import make_instances

HERE = Path(__file__).resolve().parent

#: Fitted post-processing settings tried on the model (attribute -> value); the model's own first.
SETTINGS = [
    {},
    {"recovery_": "split"},
    {"recovery_": "split", "min_share_": 0.05, "min_size_": 20},
    {"recovery_": "split", "metric_": "l1", "bandwidth_": 1.2},
    {"recovery_": "split", "core_fraction_": 0.6},
    {"recovery_": "components", "min_size_": 10},
    {"recovery_": "mean_shift", "core_fraction_": 0.8, "fg_threshold_": 0.4},
    {"recovery_": "mean_shift", "bandwidth_": 0.3, "min_size_": 0},
]

#: ``cluster_embeddings`` keyword arguments tried on the synthetic embedding.
CLUSTER_KWARGS = [
    {},
    {"recovery": "mean_shift"},
    {"recovery": "mean_shift", "split_components": True, "merge_small": True, "min_size": 30},
    {"recovery": "split", "metric": "l1", "bandwidth": 1.0, "min_share": 0.2},
    {"recovery": "split", "core_fraction": 0.7, "core_threshold": 0.6},
    {"recovery": "components", "min_size": 50},
]


def synthetic_embedding(labels, n_dims=4, seed=0):
    """An embedding (N, H, W) with one random vector per instance plus noise, and a foreground probability."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (labels.max() + 1, n_dims)).astype(np.float32)
    centres[0] = 0.0
    emb = centres[labels].transpose(2, 0, 1) + rng.normal(0.0, 0.08, (n_dims, *labels.shape)).astype(np.float32)
    prob = np.clip((labels > 0) * 0.8 + rng.uniform(0.0, 0.3, labels.shape), 0, 1).astype(np.float32)
    return np.ascontiguousarray(emb, dtype=np.float32), prob


def main():
    data = make_instances(n_images=5, shape=(64, 64), n_instances=(3, 7), random_state=1)
    images = [im.astype(np.float32) for im in data.images]
    out = {f"image_{i}": im for i, im in enumerate(images)}
    out.update({f"truth_{i}": lab for i, lab in enumerate(data.labels)})
    for s, setting in enumerate(SETTINGS):
        seg = HarmonicSegmenter.load(HERE / "model_v1")
        for k, v in setting.items():
            setattr(seg, k, v)
        labels, scores = seg.predict(images, return_scores=True)
        for i, (lab, sc) in enumerate(zip(labels, scores)):
            out[f"setting_{s}_labels_{i}"], out[f"setting_{s}_scores_{i}"] = lab, sc
    seg = HarmonicSegmenter.load(HERE / "model_v1")
    seg.optimize_postprocessing(images[:3], data.labels[:3])
    tuned = {k: getattr(seg, k) for k in ("recovery_", "metric_", "bandwidth_", "min_size_", "min_share_",
                                          "core_fraction_", "fg_threshold_")}
    out["tuned"] = np.array(json.dumps(tuned))
    out["tuning_results"] = np.array(json.dumps(seg.tuning_results_))
    labels, scores = seg.predict(images, return_scores=True)
    for i, (lab, sc) in enumerate(zip(labels, scores)):
        out[f"tuned_labels_{i}"], out[f"tuned_scores_{i}"] = lab, sc

    from harmonic_seg.nn import cluster_embeddings

    big = make_instances(n_images=1, shape=(96, 96), n_instances=(6, 6), random_state=2).labels[0]
    emb, prob = synthetic_embedding(big)
    out["embedding"], out["fg_prob"] = emb, prob
    for c, kwargs in enumerate(CLUSTER_KWARGS):
        lab, sc = cluster_embeddings(emb, prob > 0.5, **{"bandwidth": 0.5, **kwargs}, fg_prob=prob)
        out[f"cluster_{c}_labels"], out[f"cluster_{c}_scores"] = lab, sc
    np.savez_compressed(HERE / "clustering_reference.npz", **out)
    print(f"tuned: {tuned}; reference written to {HERE / 'clustering_reference.npz'}")


if __name__ == "__main__":
    main()
