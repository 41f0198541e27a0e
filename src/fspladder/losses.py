"""The FSP loss (patent eq. 2, [0092-0098]; Yim et al., CVPR 2017, eq. 2) and soft targets (Hinton et al. 2015)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["fsp_loss", "soft_target_loss", "LOSS_NORMS"]

LossNorm = Literal["patent", "element", "pair"]
LOSS_NORMS: tuple[str, ...] = ("patent", "element", "pair")


def fsp_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    weights: Sequence[float] | None = None,
    norm: LossNorm = "patent",
) -> torch.Tensor:
    """Weighted squared Euclidean distance between two networks' FSP matrices.

    ``L = (1/B) * sum_x sum_i lambda_i * || G_i^T(x) - G_i^S(x) ||_F^2``

    Args:
        student: ``n`` tensors of shape ``(B, m_i, n_i)`` (the student's FSP matrices).
        teacher: ``n`` tensors of the same shapes (the previous network's; detached by the caller).
        weights: ``lambda_i``, one per pair; all 1.0 by default (the patent's choice [0098]).
        norm: how each pair's term is scaled (``lambda_i`` applies on top).
            ``"patent"``: the squared Frobenius norm as written in eq. 2; it grows with
            ``m_i * n_i`` and with the feature magnitudes, so wide pairs dominate.
            ``"element"``: the mean over the ``m_i * n_i`` entries (per-element MSE).
            ``"pair"``: relative error, the squared norm divided by the batch mean of
            ``||G_i^T||_F^2`` (a constant, not differentiated), so every pair starts near 1.
            Not in the patent; offered to balance pairs of different sizes.

    Returns:
        A scalar tensor: the batch mean of the weighted sum of squared Frobenius norms.
    """
    if len(student) != len(teacher):
        raise ValueError(
            f"fsp_loss: the student has {len(student)} FSP matrices and the teacher {len(teacher)}; "
            "both networks need the same number of FSP pairs"
        )
    if not student:
        raise ValueError("fsp_loss: no FSP matrices given")
    if norm not in LOSS_NORMS:
        raise ValueError(f"fsp_loss: norm must be one of {', '.join(LOSS_NORMS)}, got {norm!r}")
    if weights is None:
        weights = [1.0] * len(student)
    elif len(weights) != len(student):
        raise ValueError(f"fsp_loss: {len(weights)} weights for {len(student)} FSP pairs; give one weight per pair")
    total = student[0].new_zeros((), dtype=torch.float32)
    for i, (gs, gt, lam) in enumerate(zip(student, teacher, weights)):
        if gs.shape != gt.shape:
            raise ValueError(
                f"fsp_loss: FSP pair {i} has student shape {tuple(gs.shape)} but teacher shape "
                f"{tuple(gt.shape)}; the tapped channel counts must match (or align them with projections)"
            )
        diff = gs.float() - gt.float()  # (B, m, n)
        sq = diff.pow(2).sum(dim=(1, 2))  # (B,)
        if norm == "element":
            sq = sq / (gs.shape[1] * gs.shape[2])
        elif norm == "pair":
            sq = sq / gt.detach().float().pow(2).sum(dim=(1, 2)).mean().clamp_min(1e-12)
        total = total + lam * sq.mean()
    return total


def soft_target_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, temperature: float,
                     alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """``(1 - alpha) * CE(logits, y) + alpha * T^2 * KL(softmax(t / T) || softmax(s / T))`` (Hinton et al. 2015).

    Args:
        logits: ``(B, K)`` the student's outputs.
        teacher_logits: ``(B, K)`` the frozen network's outputs (no gradient flows into them).
        y: ``(B,)`` labels.
        temperature: ``T``; the ``T^2`` factor keeps the soft term's gradients on the scale of the hard one's.
        alpha: weight of the soft term.

    ``temperature`` and ``alpha`` have no defaults here: the recipes' are ``recipes.schedule_defaults``'.

    Computed in float32 whatever autocast is active, like the FSP terms.
    """
    if logits.shape != teacher_logits.shape:
        raise ValueError(f"soft targets: the student gives {tuple(logits.shape)} logits but the previous network "
                         f"{tuple(teacher_logits.shape)}; both must predict the same classes")
    s, t = logits.float(), teacher_logits.detach().float()
    kd = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1),
                  reduction="batchmean") * temperature**2
    return (1 - alpha) * F.cross_entropy(s, y, label_smoothing=label_smoothing) + alpha * kd
