"""Training losses: the harmonic L1 loss (paper eq. 5) and the discriminative baseline.

Both add the same foreground BCE term, so that the two are trained and
clustered by exactly the same network and post-processing:

* :func:`harmonic_loss`: pixelwise L1 distance to the guided target
  embeddings (Kulikov & Lempitsky 2020, eq. 5);
* :func:`discriminative_loss`: the instance-pull / instance-push loss of
  De Brabandere, Neven & Van Gool (2017), the baseline of the paper's Tables 1
  and 3; it needs the label map, not the targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["harmonic_loss", "discriminative_loss", "touching_pixels"]


def harmonic_loss(
    pred_emb, target_emb, fg_logit, labels_or_fgmask, ignore=None, fg_only=True, fg_weight=1.0, boundary_weight=0.0
):
    """L1 embedding loss over foreground pixels plus a foreground BCE loss.

    Parameters
    ----------
    pred_emb : torch.Tensor of shape (B, N, H, W)
        Predicted embeddings.
    target_emb : torch.Tensor of shape (B, N, H, W)
        Target (guided) embeddings, e.g. from :func:`harmonic_seg.guides.embedding_map`.
    fg_logit : torch.Tensor of shape (B, 1, H, W) or (B, H, W)
        Foreground logits.
    labels_or_fgmask : torch.Tensor of shape (B, H, W)
        Label map (0 = background) or boolean foreground mask.
    ignore : torch.Tensor of shape (B, H, W) or None, default=None
        True where pixels are excluded from both terms (padding, unlabelled areas).
    fg_only : bool, default=True
        Average the L1 term over foreground pixels (paper eq. 5); when False
        over all non-ignored pixels (the target is 0 on background).
    fg_weight : float, default=1.0
        Weight of the BCE term; 0 disables it.
    boundary_weight : float, default=0.0
        Extra weight of the L1 term on the pixels where two instances touch:
        a foreground pixel with another instance within
        ``BOUNDARY_RADIUS`` (2) pixels weighs ``1 + boundary_weight``
        (see :func:`touching_pixels`); the L1 term stays a weighted mean. It
        needs a label map: with a boolean mask no pixel touches another
        instance and the weight has no effect.

    Returns
    -------
    total : torch.Tensor (scalar)
        ``l1 + fg_weight * fg``, differentiable.
    parts : dict
        ``{"l1": ..., "fg": ...}`` as detached scalar tensors: the mean absolute
        error per pixel and channel, and the mean BCE per non-ignored pixel.
        Each is 0 when no pixel contributes.
    """
    if pred_emb.shape != target_emb.shape:
        raise ValueError(
            f"pred_emb and target_emb must have the same shape; got {tuple(pred_emb.shape)} and "
            f"{tuple(target_emb.shape)}."
        )
    b, n, h, w = pred_emb.shape
    fg = labels_or_fgmask.reshape(b, h, w) > 0
    valid = torch.ones_like(fg) if ignore is None else ~ignore.reshape(b, h, w).bool()
    pred_emb = pred_emb.float()
    target_emb = target_emb.to(device=pred_emb.device, dtype=torch.float32)
    emb_mask = (fg & valid) if fg_only else valid
    weight = emb_mask.to(pred_emb.dtype)
    if boundary_weight:
        weight = weight * (1.0 + boundary_weight * touching_pixels(labels_or_fgmask.reshape(b, h, w)).to(weight.dtype))
    diff = (pred_emb - target_emb).abs() * weight[:, None]
    l1 = diff.sum() / (weight.sum() * n).clamp(min=1)
    fg_loss = _foreground_bce(fg_logit, fg, valid, fg_weight)
    total = l1 + fg_weight * fg_loss
    return total, {"l1": l1.detach(), "fg": fg_loss.detach()}


#: Reach of :func:`touching_pixels`, in pixels of the network's input.
BOUNDARY_RADIUS = 2


def touching_pixels(labels, radius=BOUNDARY_RADIUS):
    """Foreground pixels with a pixel of another instance within ``radius`` (chessboard distance).

    Parameters
    ----------
    labels : torch.Tensor of shape (B, H, W)
        Label maps (0 = background); a boolean mask has no touching pixels.
    radius : int, default=BOUNDARY_RADIUS

    Returns
    -------
    touching : torch.Tensor of shape (B, H, W), bool
        Computed with two max-pools of the ids (no loop over instances):
        a pixel touches another instance when the largest id around it is
        larger than its own, or the smallest non-zero id is smaller.
    """
    if labels.dtype == torch.bool:
        return torch.zeros_like(labels)
    lab = labels.to(torch.float64)[:, None]  # float64: ids up to 2**53 stay exact
    k = 2 * radius + 1
    above = F.max_pool2d(lab, k, stride=1, padding=radius)
    big = lab.max() + 1
    below = -F.max_pool2d(-torch.where(lab > 0, lab, big), k, stride=1, padding=radius)
    return ((lab > 0) & ((above > lab) | (below < lab)))[:, 0]


def _foreground_bce(fg_logit, fg, valid, fg_weight):
    """Mean BCE of the foreground logits over the valid pixels (0 when ``fg_weight`` is 0)."""
    b, h, w = fg.shape
    if not fg_weight:
        return torch.zeros((), device=fg.device)
    logit = fg_logit.float().reshape(b, h, w)
    bce = F.binary_cross_entropy_with_logits(logit, fg.to(logit.dtype), reduction="none")
    vf = valid.to(logit.dtype)
    return (bce * vf).sum() / vf.sum().clamp(min=1)


def _norm(x, dim=-1):
    """Euclidean norm with a finite gradient at 0."""
    return torch.sqrt((x * x).sum(dim) + 1e-12)


def discriminative_loss(pred_emb, labels, fg_logit, ignore=None, delta_v=0.5, delta_d=1.5, gamma=1e-3, fg_weight=1.0):
    """Discriminative loss of De Brabandere et al. (2017) plus the foreground BCE.

    For each image of the batch with instances ``c = 1..C`` of mean embedding
    ``mu_c``: the variance (pull) term ``mean_c mean_{i in c} [|mu_c - x_i| - delta_v]_+^2``,
    the distance (push) term ``mean_{c != c'} [2 delta_d - |mu_c - mu_c'|]_+^2``
    and the regulariser ``gamma * mean_c |mu_c|`` (Euclidean norms, the paper's
    weights 1, 1 and 0.001); the embedding term is their sum averaged over the
    images that hold at least one instance. Instances separated like this are
    recovered by a mean shift of bandwidth about ``delta_v``. Vectorised over
    pixels and instances (no Python loop).

    Parameters
    ----------
    pred_emb : torch.Tensor of shape (B, N, H, W)
        Predicted embeddings.
    labels : torch.Tensor of shape (B, H, W), integer
        Instance label maps of the crops (0 = background); ids need only be
        unique within an image.
    fg_logit : torch.Tensor of shape (B, 1, H, W) or (B, H, W)
        Foreground logits.
    ignore : torch.Tensor of shape (B, H, W) or None, default=None
        True where pixels are excluded from all terms.
    delta_v, delta_d : float, default=0.5, 1.5
        Pull and push margins (De Brabandere et al.'s values); ``delta_d > delta_v``.
    gamma : float, default=1e-3
        Weight of the regulariser.
    fg_weight : float, default=1.0
        Weight of the BCE term; 0 disables it.

    Returns
    -------
    total : torch.Tensor (scalar)
        ``pull + push + gamma * reg + fg_weight * fg``, differentiable.
    parts : dict
        ``{"l1": ..., "fg": ...}`` as detached scalars: ``"l1"`` holds the
        embedding term (named like :func:`harmonic_loss`'s so that training
        histories have the same keys), ``"fg"`` the mean BCE.
    """
    if not 0 < delta_v < delta_d:
        raise ValueError(f"delta_v and delta_d must satisfy 0 < delta_v < delta_d; got {delta_v!r} and {delta_d!r}.")
    b, n, h, w = pred_emb.shape
    if tuple(labels.shape[-2:]) != (h, w) or labels.numel() != b * h * w:
        raise ValueError(f"labels must have shape ({b}, {h}, {w}); got {tuple(labels.shape)}.")
    if labels.dtype == torch.bool or labels.is_floating_point():
        raise TypeError(f"labels must hold integer instance ids (a mask is one instance per image); got {labels.dtype}.")
    lab = labels.reshape(b, h * w).long()
    valid = torch.ones_like(lab, dtype=torch.bool) if ignore is None else ~ignore.reshape(b, h * w).bool()
    inside = (lab > 0) & valid
    emb = pred_emb.float().reshape(b, n, h * w).transpose(1, 2)[inside]  # (P, N)
    fg_loss = _foreground_bce(fg_logit, (lab > 0).reshape(b, h, w), valid.reshape(b, h, w), fg_weight)
    if emb.shape[0] == 0:
        term = pred_emb.float().sum() * 0.0  # keeps the graph: no instance in this batch
        return term + fg_weight * fg_loss, {"l1": term.detach(), "fg": fg_loss.detach()}
    image = torch.arange(b, device=lab.device)[:, None].expand(b, h * w)[inside]
    stride = int(lab.max()) + 1
    key = image * stride + lab[inside]
    uniq, inv = torch.unique(key, return_inverse=True)  # instance index of every pixel
    owner = uniq // stride  # image of every instance
    k = uniq.shape[0]
    size = torch.bincount(inv, minlength=k).to(emb.dtype)
    mu = emb.new_zeros(k, n).index_add_(0, inv, emb) / size[:, None]
    pull_px = torch.relu(_norm(emb - mu[inv]) - delta_v) ** 2
    pull = emb.new_zeros(k).index_add_(0, inv, pull_px) / size
    pair = owner[:, None] == owner[None, :]
    pair.fill_diagonal_(False)
    push = torch.relu(2 * delta_d - _norm(mu[:, None, :] - mu[None, :, :])) ** 2 * pair
    reg = _norm(mu)
    n_inst = torch.bincount(owner, minlength=b).to(emb.dtype)
    per_image = (
        emb.new_zeros(b).index_add_(0, owner, pull + gamma * reg) / n_inst.clamp(min=1)
        + emb.new_zeros(b).index_add_(0, owner, push.sum(1)) / (n_inst * (n_inst - 1)).clamp(min=1)
    )
    term = per_image[n_inst > 0].mean()
    return term + fg_weight * fg_loss, {"l1": term.detach(), "fg": fg_loss.detach()}
