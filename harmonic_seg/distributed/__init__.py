"""Beyond one machine's memory and cores, on dask (``pip install 'harmonic_seg[dask]'``).

* :func:`predict_blockwise`: lazy labels (a dask array) of one large image
  (a dask or Zarr array), block by block, equal to the whole image's
  prediction: embeddings in whole-image coordinates, whole-image
  normalisation, instances cut by block borders joined by their embeddings.
* :func:`predict_to_zarr`: the same, written to a Zarr array in bounded memory;
  its ``attrs`` give the instance count, the stitching figures and the
  seconds per stage (``attrs["seconds"]``).
* :func:`predict_many`: many images over a cluster's workers, the model sent
  to each worker once, outputs written as they finish, failures reported.

Importing this package needs no dask; the functions import it when called.
"""

from .blockwise import global_intensity_range, predict_blockwise, predict_to_zarr
from .many import PredictManyResult, predict_many

__all__ = ["predict_blockwise", "predict_to_zarr", "predict_many", "PredictManyResult", "global_intensity_range"]
