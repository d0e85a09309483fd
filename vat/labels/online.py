"""Online pseudo-labels (``train.labels: online``): D re-labels the translated images every step.

The authors' release recomputes pseudo-labels at every step and adds D's predictions on the
current T_A output to those of I_LQ and I_R (SPEC, "Details the paper leaves open"). Here
that is an option over the cached labels of the ``pseudolabel`` stage: at each step D runs
(no gradient, eval mode, at the crop's scale) on T_A(G(I_R, I_LQ)) of the batch's degraded
crops; each box is scored by the same NUQ reference set and epsilon the stage used
(``reference.npz``, written beside ``boxes.parquet``), kept and weighted by the same rule
(:func:`vat.labels.rules.weights`), and *added* to the cached boxes of the crop where no
cached box of its class overlaps it at ``merge_iou`` or more (the cached I_LQ / I_R boxes
win, as the stage's merge lets the most confident box win and the cached ones carry no
score in training). Y_HQ is not re-labelled (the clean images do not change).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vat.errors import DataError
from vat.layout import REFERENCE  # in data/pseudolabel/: NUQ's reference set, epsilon and the rule's params

__all__ = ["REFERENCE", "OnlineLabels", "save_reference"]


def save_reference(path: Path, features: np.ndarray, targets: np.ndarray, eps: float, params) -> None:
    """What re-labelling needs from the ``pseudolabel`` stage, in one file (atomic)."""
    from vat.io import atomic_path

    rule = json.dumps(asdict(params))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, features=features.astype(np.float32), targets=targets, epsilon=np.float64(eps),
                 rule=np.array(rule))  # fmt: skip


class OnlineLabels:
    """Per step: the degraded crops' cached targets plus D's kept boxes on their translation."""

    def __init__(self, detector, reference: Path, device: torch.device) -> None:
        from vat.config import from_dict
        from vat.labels.rules import PseudolabelParams, _nuq

        if not reference.is_file():
            raise DataError(f"{reference}: missing (train.labels: online needs it); rerun `vat pseudolabel`")
        try:
            with np.load(reference, allow_pickle=False) as z:
                feats, targets = z["features"], z["targets"]
                self.eps, rule = float(z["epsilon"]), json.loads(str(z["rule"]))
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{reference}: not a pseudo-label reference set ({e})") from None
        self.params = from_dict(PseudolabelParams, rule, str(reference))
        dim = getattr(detector, "feature_dim", None)
        if feats.ndim != 2 or (dim is not None and feats.shape[1] != dim):
            got = feats.shape[1] if feats.ndim == 2 else feats.shape
            raise DataError(f"{reference}: features of width {got} from another D (this D's: {dim}); "
                            "rerun `vat pseudolabel`")  # fmt: skip
        self.detector, self.device = detector, device
        self.nuq = _nuq(self.params, device).fit(torch.from_numpy(feats), torch.from_numpy(targets))
        self.added, self.images = 0, 0  # boxes added, crops re-labelled: the run's mean is reported

    @torch.no_grad()
    def __call__(self, model, lq: Tensor, restored: Tensor, targets: list[dict[str, Tensor]]) -> list[dict]:
        """``targets`` (one dict per degraded crop: boxes, classes, weights) with D's new kept
        boxes on T_A(G(I_R, I_LQ)) of the crops added."""
        from torchvision.ops import box_iou

        from vat.labels.rules import weights

        p, det = self.params, self.detector
        translated = model(lq, restored).float().clamp(0, 1)  # (B, 3, h, w), the current T_A output
        resize = getattr(det, "resize", None)
        if resize is not None:
            det.resize = False  # crops come at D's scale (load_training_data), as in the loss
        try:
            found = det.predict(translated, conf=p.conf, iou=p.nms_iou)
        finally:
            if resize is not None:
                det.resize = resize
        out = []
        for t, d in zip(targets, found, strict=True):
            self.images += 1
            if len(d.scores) == 0:
                out.append(t)
                continue
            epi = self.nuq.predict(d.features.float()).epistemic.cpu().numpy()
            kept = epi <= self.eps  # the stage's rule: a box at epsilon is kept
            w = torch.from_numpy(weights(p, epi, self.eps, kept)).to(t["weights"])
            boxes, classes = d.boxes.to(t["boxes"]), d.classes.to(t["classes"])
            new = torch.from_numpy(kept).to(boxes.device) & (w > 0)
            if len(t["boxes"]) and new.any():
                iou = box_iou(boxes, t["boxes"])  # (N new, M cached)
                same = classes[:, None] == t["classes"][None, :]
                new &= ~((iou >= p.merge_iou) & same).any(1)
            self.added += int(new.sum())
            out.append({"boxes": torch.cat([t["boxes"], boxes[new]]),
                        "classes": torch.cat([t["classes"], classes[new]]),
                        "weights": torch.cat([t["weights"], w[new]])})  # fmt: skip
        return out

    def metrics(self) -> dict:
        """What the run reports: boxes added per degraded crop on average."""
        return {"online_labels": {"added": self.added, "crops": self.images, "epsilon": self.eps,
                                  "added_per_crop": round(self.added / max(self.images, 1), 4)}}  # fmt: skip
