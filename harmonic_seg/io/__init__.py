"""Reading images, label maps and the benchmark data sets (numpy only)."""

# datasets must be imported before benchmarks (benchmarks builds on it).

from .datasets import (
    OVERLAP_POLICIES,
    Dataset,
    default_data_root,
    load_folder,
    load_label_pairs,
    load_split,
    masks_to_label_map,
)
from .imread import IMAGE_SUFFIXES, read_image, read_label_map, write_label_map
from .benchmarks import CTC_PARTIAL_RATIO, load_bbbc010, load_ctc, load_cvppp  # noqa: I001  (after datasets)
from .sample import load_nuclei_sample, load_worm_sample  # noqa: E402

__all__ = [
    "Dataset",
    "default_data_root",
    "load_split",
    "load_cvppp",
    "load_bbbc010",
    "load_ctc",
    "load_folder",
    "load_label_pairs",
    "load_nuclei_sample",
    "load_worm_sample",
    "masks_to_label_map",
    "read_image",
    "read_label_map",
    "write_label_map",
    "IMAGE_SUFFIXES",
    "OVERLAP_POLICIES",
    "CTC_PARTIAL_RATIO",
]
