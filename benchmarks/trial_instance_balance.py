"""A trial, not a library option: the embedding L1 loss balanced over instances.

    python benchmarks/trial_instance_balance.py 0.5 cvppp_a1 --epochs 89 --amp --seed 0 --threads 1
        --save-model out/model_cvppp_e89_amp_ib0.5 --out out/results_cvppp_a1_e89_amp_ib0.5.json
        (one command line)

Runs ``reproduce.py`` (every argument after the exponent is passed on) with
the harmonic loss's L1 term weighted per pixel by ``area ** -beta``, where
``area`` is the number of foreground pixels of the pixel's instance in the
training crop: ``beta = 0`` is the library's loss (every pixel counts the
same, the paper's eq. 5), ``beta = 1`` makes every instance of a crop count
the same, as the discriminative loss does. The question it answers: do the
small leaves, which SBD weighs as much as the large ones, gain when the loss
stops favouring large instances? The L1 term stays a weighted mean; the
foreground BCE and everything else are the library's.
"""

from __future__ import annotations

import sys

import torch

import harmonic_seg.nn.trainer as trainer
from harmonic_seg.nn.losses import _foreground_bce


def balanced_loss(beta):
    """``harmonic_loss`` (fg_only, no boundary weight) with the L1 weights ``area ** -beta``."""

    def loss(pred_emb, target_emb, fg_logit, labels, ignore=None, fg_only=True, fg_weight=1.0, boundary_weight=0.0):
        if not fg_only or boundary_weight:
            raise ValueError("the trial covers fg_only=True and boundary_weight=0 only.")
        b, n, h, w = pred_emb.shape
        lab = labels.reshape(b, h, w).long().clamp(min=0)
        fg = lab > 0
        valid = torch.ones_like(fg) if ignore is None else ~ignore.reshape(b, h, w).bool()
        mask = (fg & valid).float()
        m = int(lab.max()) + 1
        key = (torch.arange(b, device=lab.device).view(b, 1, 1) * m + lab).reshape(-1)  # one id per crop and label
        area = torch.bincount(key, weights=mask.reshape(-1), minlength=b * m)
        weight = mask * area[key].clamp(min=1).pow(-beta).view(b, h, w)
        diff = (pred_emb.float() - target_emb.to(pred_emb.device, torch.float32)).abs() * weight[:, None]
        l1 = diff.sum() / (weight.sum() * n).clamp(min=1e-12)
        fg_loss = _foreground_bce(fg_logit, fg, valid, fg_weight)
        return l1 + fg_weight * fg_loss, {"l1": l1.detach(), "fg": fg_loss.detach()}

    return loss


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        raise SystemExit(__doc__)
    try:
        beta = float(argv[0])
    except ValueError:
        raise SystemExit(f"the first argument is the exponent beta (a number); got {argv[0]!r}.") from None
    if not 0 <= beta <= 1:
        raise SystemExit(f"beta must be in [0, 1]; got {beta}.")
    trainer.harmonic_loss = balanced_loss(beta)
    print(f"trial: L1 weights area ** -{beta} (the result file records loss='harmonic'; its name should say the beta)")
    import reproduce

    reproduce.main(argv[1:])


if __name__ == "__main__":
    main()
