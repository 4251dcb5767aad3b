"""Knowledge distillation from the reference: a loss that any training loop can add.

A trimmed model retrained against the outputs of the model it was trimmed from (the teacher,
usually the level-0 reference) often recovers more than one retrained on the labels alone. The
loss mixes a distillation term, softened by a temperature, with the task's own loss:

    loss = weight * T**2 * D(teacher / T, student / T) + (1 - weight) * task_loss

``kind="softmax"`` is for single-label classifiers (``D`` is the KL divergence between the two
softmax distributions over ``dim``); ``kind="sigmoid"`` is for independent per-output
probabilities, multi-label tags (onsets, drums) or soft per-bin targets such as CREPE's pitch
bins (``D`` is the binary KL divergence per output, averaged). The ``T**2`` factor keeps the
gradient's size independent of the temperature (Hinton, Vinyals and Dean, 2015).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["distillation_loss"]

Kind = Literal["softmax", "sigmoid"]


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    kind: Kind = "softmax",
    temperature: float = 2.0,
    weight: float = 0.7,
    dim: int = 1,
) -> torch.Tensor:
    """The mixed loss of ``student`` logits against ``teacher`` logits and ``targets``.

    ``targets`` are class indices or class probabilities (softmax), or 0/1 or soft targets in
    [0, 1] (sigmoid); without them the loss is the distillation term alone (``weight`` is then
    ignored). The teacher is detached: no gradient ever reaches it. The distillation term is
    zero exactly when the student's logits equal the teacher's.
    """
    if kind not in ("softmax", "sigmoid"):
        raise ValueError(f"kind must be 'softmax' or 'sigmoid', got {kind!r}")
    if isinstance(temperature, bool) or not float(temperature) > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if isinstance(weight, bool) or not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight!r}")
    if student.shape != teacher.shape:
        raise ValueError(
            f"student outputs {tuple(student.shape)} and teacher outputs "
            f"{tuple(teacher.shape)} differ in shape: they must be the same task's logits"
        )
    t = float(temperature)
    soft_teacher = teacher.detach().float() / t
    soft_student = student.float() / t
    if kind == "softmax":
        log_p = F.log_softmax(soft_teacher, dim=dim)
        log_q = F.log_softmax(soft_student, dim=dim)
        per_example = (log_p.exp() * (log_p - log_q)).sum(dim=dim)
        distil = per_example.mean()
    else:
        distil = _binary_kl(soft_teacher, soft_student).mean()
    distil = distil * t * t
    if targets is None:
        return distil
    if kind == "softmax":
        task = F.cross_entropy(student, targets, reduction="mean")
    else:
        task = F.binary_cross_entropy_with_logits(student, targets.to(student.dtype))
    return float(weight) * distil + (1.0 - float(weight)) * task


def _binary_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(sigmoid(t)) || Bernoulli(sigmoid(s))) per element, from logits, stably."""
    p = torch.sigmoid(teacher_logits)
    log_p, log_not_p = F.logsigmoid(teacher_logits), F.logsigmoid(-teacher_logits)
    log_q, log_not_q = F.logsigmoid(student_logits), F.logsigmoid(-student_logits)
    return p * (log_p - log_q) + (1.0 - p) * (log_not_p - log_not_q)
