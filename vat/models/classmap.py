"""D's classes and the task's: which of D's classes score as which task class.

A user's D often has its own class list: COCO's 80 names for a COCO-pretrained detector,
of which a task uses a few (the haze task: bicycle, bus, car, motorbike, person). VaT needs
no mapping to learn: pseudo-labels, NUQ and D's loss stay in D's own class space (a truck
is still a useful pseudo-label). Only scoring against the task's ground truth needs one:
each of D's classes maps to a task class through the explicit alias table
(:mod:`vat.data.classes`: motorcycle -> motorbike, ...) and the params map
``train_detector.class_map`` (written over the table; a name mapped to null is dropped),
or is dropped. Every task class must be produced by some class of D, or the stage stops
naming the class. :class:`MappedDetector` makes D's predictions speak the task's classes
for the stages that score (evaluate, val selection, the real sets, the grids).

Written beside D by ``train_detector`` (``class_map.json``) and read back with
:func:`load_class_map`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vat.data.classes import canonical
from vat.errors import DataError, ParamsError

FILE = "class_map.json"


@dataclass(frozen=True)
class ClassMap:
    """D's class names, the task's, and the task class id of each of D's (-1: dropped)."""

    d_names: tuple[str, ...]
    task_classes: tuple[str, ...]
    to_task: tuple[int, ...]  # len(d_names); -1 where D's class is dropped

    @property
    def identity(self) -> bool:
        return self.d_names == self.task_classes and self.to_task == tuple(range(len(self.d_names)))

    @property
    def mapped(self) -> dict[str, str]:
        """D's name -> task class, for the classes that map."""
        return {d: self.task_classes[t] for d, t in zip(self.d_names, self.to_task, strict=True) if t >= 0}

    @property
    def dropped(self) -> list[str]:
        return [d for d, t in zip(self.d_names, self.to_task, strict=True) if t < 0]

    def table(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(len(d_names),) int64 lookup: D's class id -> task class id or -1."""
        return torch.tensor(self.to_task, dtype=torch.long, device=device)

    def to_dict(self) -> dict:
        return {
            "d_names": list(self.d_names),
            "task_classes": list(self.task_classes),
            "to_task": list(self.to_task),
            "mapped": self.mapped,
            "dropped": self.dropped,
        }


def build_class_map(d_names: list[str], task_classes: list[str], extra: dict[str, str | None],
                    where: str = "train_detector.class_map") -> ClassMap:  # fmt: skip
    """Map each of ``d_names`` to a task class: ``extra`` first (a name to null drops it), then
    the alias table; a ParamsError when a task class is produced by none of D's classes, or
    ``extra`` names a class D does not have or a task class that does not exist."""
    lowered = {k.strip().lower(): v for k, v in extra.items()}
    d_lower = {n.strip().lower() for n in d_names}
    for k, v in lowered.items():
        if k not in d_lower:
            raise ParamsError(f"{where}.{k}: D has no class {k!r} (its classes: {', '.join(d_names)})")
        if v is not None and v not in task_classes:
            raise ParamsError(f"{where}.{k}: {v!r} is not a task class (common.classes: {task_classes})")
    to_task = []
    for name in d_names:
        key = name.strip().lower()
        target = lowered[key] if key in lowered else canonical(name)
        to_task.append(task_classes.index(target) if target in task_classes else -1)
    missing = [c for i, c in enumerate(task_classes) if i not in to_task]
    if missing:
        raise ParamsError(
            f"common.classes: D cannot produce {missing} (its classes: {', '.join(d_names)}); map one of D's "
            f"classes to each in {where}, e.g. {{{d_names[0]}: {missing[0]}}}, or drop it from common.classes"
        )
    return ClassMap(tuple(d_names), tuple(task_classes), tuple(to_task))


def save_class_map(cm: ClassMap, folder: Path) -> None:
    from vat.io import write_json

    write_json(cm.to_dict(), folder / FILE)


def load_class_map(folder: Path, d_names: list[str], task_classes: list[str]) -> ClassMap:
    """The map ``train_detector`` wrote beside D; without one (an older output, or a D we
    trained) D's classes must be the task's."""
    path = Path(folder) / FILE
    if not path.is_file():
        if list(d_names) != list(task_classes):
            raise DataError(f"{path}: missing, and D's classes {d_names} are not the task's {task_classes}")
        return ClassMap(tuple(d_names), tuple(task_classes), tuple(range(len(d_names))))
    data = json.loads(path.read_text())
    cm = ClassMap(tuple(data["d_names"]), tuple(data["task_classes"]), tuple(int(t) for t in data["to_task"]))
    if list(cm.d_names) != list(d_names) or list(cm.task_classes) != list(task_classes):
        raise DataError(
            f"{path}: made for other classes (D {cm.d_names}, task {cm.task_classes}); rerun train_detector"
        )
    return cm


class MappedDetector:
    """D whose predictions speak the task's classes: each box's class mapped, boxes of dropped
    classes removed. Everything else is D's (``loss``, ``letterbox``, ``imgsz``, ...)."""

    def __init__(self, detector, class_map: ClassMap) -> None:
        self.detector = detector
        self.class_map = class_map

    def __getattr__(self, name: str):
        return getattr(self.detector, name)

    @property
    def names(self) -> list[str]:
        return list(self.class_map.task_classes)

    def predict(self, images: torch.Tensor, *args, **kwargs) -> list:
        from dataclasses import replace

        dets = self.detector.predict(images, *args, **kwargs)
        if self.class_map.identity:
            return dets
        out = []
        for d in dets:
            task = self.class_map.table(d.classes.device)[d.classes]
            keep = task >= 0
            out.append(replace(d, boxes=d.boxes[keep], scores=d.scores[keep], classes=task[keep],
                               features=d.features[keep],
                               anchors=None if d.anchors is None else d.anchors[keep]))  # fmt: skip
        return out


def map_classes(classes: np.ndarray, cm: ClassMap) -> np.ndarray:
    """D's class ids -> task class ids (-1 for dropped ones)."""
    return np.asarray(cm.to_task, dtype=np.int64)[np.asarray(classes, dtype=np.int64)]
