"""Write the back-compatibility fixture of the model formats (format version 1).

Run with harmonic_seg at commit 589e6ec (the last version before the saved
folder format was validated on load), from the repository root::

    python tests/data/make_model_v1.py

It fits a tiny HarmonicSegmenter on synthetic images and writes, beside this
script:

- ``model_v1/`` (``config.json`` + ``weights.npz``): ``HarmonicSegmenter.save``;
- ``model_v1.joblib``: the same model pickled with joblib;
- ``model_v1_expected.npz``: one input image (``image``), the label map
  ``predict`` returned for it (``labels``) and the output of
  ``predict_embeddings`` (``embedding``, ``fg_prob``).

``tests/test_persistence.py`` loads both files with the current code and
checks that the predictions are identical to the stored ones. Do not rerun it
with a later version: the point is that the files were written by the old one.
"""

from pathlib import Path

import joblib
import numpy as np

from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter
from harmonic_seg.synthetic import make_instances

HERE = Path(__file__).resolve().parent


def main():
    data = make_instances(n_images=4, shape=(48, 48), n_instances=(3, 6), random_state=0)
    seg = HarmonicSegmenter(
        guides=GuideFunctionFitter(n_guides=4), depth=2, base_width=4, epochs=20, crop_size=32, batch_size=2,
        validation_fraction=0, min_size=3, random_state=0, device="cpu",
    )
    seg.fit(data.images[:3], data.labels[:3])
    image = data.images[3].astype(np.float32)
    labels = seg.predict([image])[0]
    embedding, fg_prob = seg.predict_embeddings([image])[0]
    seg.save(HERE / "model_v1", overwrite=True)
    joblib.dump(seg, HERE / "model_v1.joblib")
    np.savez_compressed(
        HERE / "model_v1_expected.npz", image=image, labels=labels, embedding=embedding, fg_prob=fg_prob
    )
    print(f"{int(labels.max())} instances predicted; fixture written to {HERE}")


if __name__ == "__main__":
    main()
