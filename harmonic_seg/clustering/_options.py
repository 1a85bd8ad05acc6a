"""Choices shared by the clustering's function and estimator (no imports: both modules read them)."""

#: How instances are recovered from the embedding (``recovery=``): "split": connected components of the
#: foreground, split where the embedding shows distinct modes; "components": the connected components alone
#: (the embedding unused); "mean_shift": mean shift of all foreground pixels at once, each cluster an
#: instance (the paper's post-processing).
RECOVERIES = ("split", "components", "mean_shift")
