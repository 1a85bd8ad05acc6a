"""Training loss: pixelwise L1 to the guided embeddings (paper eq. 5) + foreground BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["harmonic_loss"]


def harmonic_loss(pred_emb, target_emb, fg_logit, labels_or_fgmask, ignore=None, fg_only=True, fg_weight=1.0):
    """L1 embedding loss over foreground pixels plus a foreground BCE loss.

    Parameters
    ----------
    pred_emb : torch.Tensor of shape (B, N, H, W)
        Predicted embeddings.
    target_emb : torch.Tensor of shape (B, N, H, W)
        Target (guided) embeddings, e.g. from :func:`harmonic_seg.embeddings.embedding_map`.
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
    count = emb_mask.sum()
    diff = (pred_emb - target_emb).abs() * emb_mask[:, None].to(pred_emb.dtype)
    l1 = diff.sum() / (count * n).clamp(min=1).to(pred_emb.dtype)
    fg_loss = pred_emb.new_zeros(())
    if fg_weight:
        logit = fg_logit.float().reshape(b, h, w)
        bce = F.binary_cross_entropy_with_logits(logit, fg.to(logit.dtype), reduction="none")
        vf = valid.to(logit.dtype)
        fg_loss = (bce * vf).sum() / vf.sum().clamp(min=1)
    total = l1 + fg_weight * fg_loss
    return total, {"l1": l1.detach(), "fg": fg_loss.detach()}
