"""How each task's labels are selected, unweighted, mixed and scored by D, for the VaT loss:
boxes for detection, soft labels for classification."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor

from vat.train.loss_inputs import Classifier, Detector
from vat.train.mixing import TargetList, mix_soft_labels, mix_targets
from vat.train.mixing import unit_targets as _unit_targets


def _take(x: Tensor, idx: Tensor) -> Tensor:
    return x if idx.numel() == x.shape[0] else x.index_select(0, idx)


class _Task(Protocol):
    """How one task's labels are selected, unweighted, mixed and scored."""

    def take(self, labels: Any, idx: Tensor) -> Any: ...
    def unit(self, labels: Any) -> Any: ...
    def mix_labels(self, y_lq: Any, y_hq: Any, lam: Tensor) -> Any: ...
    def loss(self, images: Tensor, labels: Any) -> Tensor: ...
    def losses(self, calls: list[tuple[Tensor, Any]]) -> list[Tensor]: ...


class _Detection:
    """Labels: one target dict per image. D's loss is ultralytics' ``(box + cls + dfl) * batch``
    over the images kept in each term (``cycle_weight`` / ``mle_weight`` balance it)."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def take(self, labels: TargetList, idx: Tensor) -> list:
        return [labels[i] for i in idx.tolist()]

    def unit(self, labels: TargetList) -> list:
        return _unit_targets(labels)

    def mix_labels(self, y_lq: TargetList, y_hq: TargetList, lam: Tensor) -> list:
        return mix_targets(y_lq, y_hq, lam)

    def loss(self, images: Tensor, labels: TargetList) -> Tensor:
        return self.detector.loss(images, list(labels))[0]

    def losses(self, calls: list[tuple[Tensor, TargetList]]) -> list[Tensor]:
        return [total for total, _ in self.detector.losses([(x, list(y)) for x, y in calls])]


class _Classification:
    """Labels: ``(soft labels (B, K), weights (B,))``. D's loss is a mean cross-entropy over the
    samples of non-zero weight; the mixed label's weight is its mass
    (:func:`vat.train.mixing.mix_soft_labels`)."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    def take(self, labels: tuple[Tensor, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
        y, w = labels
        return _take(y, idx.to(y.device)), _take(w, idx.to(w.device))

    def unit(self, labels: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y, w = labels
        return y, (w > 0).to(w.dtype)

    def mix_labels(self, y_lq, y_hq, lam):
        (p_lq, w_lq), (p_hq, w_hq) = y_lq, y_hq
        return mix_soft_labels(p_lq, p_hq, w_lq, w_hq, lam.to(p_lq.device))

    def loss(self, images: Tensor, labels: tuple[Tensor, Tensor]) -> Tensor:
        y, w = labels
        return self.classifier.loss(images, y, w)

    def losses(self, calls: list[tuple[Tensor, tuple[Tensor, Tensor]]]) -> list[Tensor]:
        return self.classifier.losses([(x, y, w) for x, (y, w) in calls])


def _task_losses(task: _Task, calls: dict[str, tuple[Tensor, Any]], one_pass: bool) -> dict[str, Tensor]:
    """D's loss of each named ``(images, labels)`` call: one D forward for all of them with
    ``one_pass`` (the same values up to float rounding, fewer and larger kernels), else one each."""
    if one_pass and len(calls) > 1:
        return dict(zip(calls, task.losses(list(calls.values())), strict=True))
    return {name: task.loss(x, y) for name, (x, y) in calls.items()}
