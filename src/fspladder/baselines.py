"""Baselines the ladder is measured against in ``fspladder bench``.

* soft targets (Hinton et al. 2015): cross-entropy plus the KL divergence to
  the teacher's softened outputs;
* function-preserving growth (Net2Net-style, Chen et al. 2016): the target
  starts as an exact copy of the teacher's function, new residual blocks
  starting as identities;
* growth + FSP (not in the patent): the teacher's blocks copied, the new
  blocks left at their fresh initialisation and then trained alone to
  reproduce the teacher's FSP matrices (the bench's ``grow-fsp`` arm).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import CifarResNet

__all__ = ["soft_target_loss", "grow_resnet", "can_grow", "grown_copies"]


def soft_target_loss(teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9):
    """``(1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)``; the teacher runs frozen in eval."""
    teacher.eval()

    def loss_fn(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t_logits = teacher(x)
        kd = F.kl_div(F.log_softmax(logits / temperature, 1), F.softmax(t_logits / temperature, 1),
                      reduction="batchmean") * temperature**2
        return (1 - alpha) * F.cross_entropy(logits, y) + alpha * kd

    return loss_fn


def can_grow(teacher: nn.Module, student: nn.Module) -> bool:
    """Growth needs two built-in ResNets of equal width with no fewer blocks per section in the student."""
    return (isinstance(teacher, CifarResNet) and isinstance(student, CifarResNet)
            and teacher.width == student.width
            and student.blocks_per_section >= teacher.blocks_per_section
            and teacher.fc.out_features == student.fc.out_features
            and teacher.stem[0].in_channels == student.stem[0].in_channels)


def grown_copies(teacher: CifarResNet, student: CifarResNet) -> list[nn.Module]:
    """The parts of ``student`` that :func:`grow_resnet` copies from ``teacher``: stem, head, and the
    first ``n_t`` blocks of each section; every other block is new."""
    parts: list[nn.Module] = [student.stem, student.fc]
    for name in ("layer1", "layer2", "layer3"):
        parts += list(getattr(student, name))[: len(getattr(teacher, name))]
    return parts


@torch.no_grad()
def grow_resnet(teacher: CifarResNet, student: CifarResNet, identity: bool = True) -> CifarResNet:
    """Copy ``teacher`` into ``student``; with ``identity``, make ``student`` compute exactly its function.

    The stem, the head and the first ``n_t`` blocks of each section are copied;
    with ``identity`` every extra block gets a zero last-BN scale and bias, so it
    outputs ``relu(x + 0) = x`` (its input is already post-ReLU): an identity.
    Without it the extra blocks keep the student's own initialisation.
    """
    if not can_grow(teacher, student):
        raise ValueError("grow_resnet needs two CifarResNets of equal width, in_chans and classes, "
                         "the student with at least as many blocks per section")
    student.stem.load_state_dict(teacher.stem.state_dict())
    student.fc.load_state_dict(teacher.fc.state_dict())
    for name in ("layer1", "layer2", "layer3"):
        t_sec, s_sec = getattr(teacher, name), getattr(student, name)
        for i, block in enumerate(s_sec):
            if i < len(t_sec):
                block.load_state_dict(t_sec[i].state_dict())
            elif identity:
                block.bn2.weight.zero_()
                block.bn2.bias.zero_()
    return student
