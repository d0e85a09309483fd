"""The YOLOv5 network: its model yaml, the layers it names, and its anchor-based Detect head.

YOLOv5 v7.0 (Jocher et al., https://github.com/ultralytics/yolov5, ``models/yolo.py``) rebuilt
without importing its code: :func:`parse_model` follows the repository's yaml rules
(``depth_multiple`` scales the repeats, ``width_multiple`` the channels, rounded up to a
multiple of 8; ``from`` indices name earlier layers; ``nc`` and ``anchors`` in the args are
the yaml's), and :class:`YOLOv5Model` has the repository's ``DetectionModel`` layout, so the
two share state_dict keys (``model.24.m.0.weight``, ``model.24.anchors``, ...).

Layers are ultralytics' where they compute exactly what YOLOv5's do: ``Conv`` (conv without
bias, ``autopad``, BatchNorm, SiLU), ``C3``, ``SPP``, ``Focus``, ``Concat`` (and torch's
``nn.Upsample``, ``nn.MaxPool2d``, ``nn.ZeroPad2d``, as in YOLOv5). Two are not:
ultralytics' ``SPPF`` has no activation after its first conv (YOLOv5's has SiLU), and its
``Bottleneck`` defaults to two 3x3 convs (YOLOv5's is 1x1 then 3x3); :class:`SPPF` and
:func:`Bottleneck` here are YOLOv5's. BatchNorms get YOLOv5's ``initialize_weights`` values
(eps 1e-3, momentum 0.03); eps is not in a state_dict, so checkpoint readers set it again.
Other modules (BottleneckCSP, GhostConv, C3TR, ...) and activations other than SiLU are
refused with a :class:`~vat.errors.DataError`.

Detect (:class:`Detect`): per level a 1x1 conv to ``na * (5 + nc)`` channels, viewed as
``(B, na, ny, nx, 5 + nc)`` (the raw predictions the loss reads) and decoded as v7.0 does:
``xy = (sigmoid * 2 - 0.5 + cell) * stride``, ``wh = (sigmoid * 2) ** 2 * anchor``,
objectness and class probabilities by sigmoid.

The shipped architecture is ``vat/models/yolo/yolov5/yolov5.yaml`` (v6.0/v7.0 P5, scales n, s,
m, l, x): ``yolov5:yolov5n.yaml`` selects it (:func:`load_yolov5_yaml`); ultralytics ships an
anchor-free yaml of the same name, hence the explicit ``yolov5:`` prefix.
"""

from __future__ import annotations

import math
import re
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
import yaml as pyyaml
from torch import Tensor, nn
from ultralytics.nn.modules import C3, SPP, Concat, Conv, Focus
from ultralytics.nn.modules.block import Bottleneck as _Bottleneck

from vat.errors import DataError

__all__ = ["PREFIX", "YOLOV5_DIR", "Detect", "SPPF", "YOLOv5Model", "load_yolov5_yaml", "parse_model"]

PREFIX = "yolov5:"  # model names with this prefix are YOLOv5 (anchor-based) yamls
YOLOV5_DIR = Path(__file__).parents[1] / "yolo" / "yolov5"
BN_EPS, BN_MOMENTUM = 1e-3, 0.03  # YOLOv5's initialize_weights


class SPPF(nn.Module):
    """YOLOv5's SPPF (SiLU after cv1, unlike ultralytics' SPPF): three chained max-pools."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


def Bottleneck(c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5) -> nn.Module:  # noqa: N802
    """YOLOv5's Bottleneck (1x1 then 3x3 conv): ultralytics' with those kernels."""
    return _Bottleneck(c1, c2, shortcut, g, k=(1, 3), e=e)


class Detect(nn.Module):
    """YOLOv5's anchor-based head: raw per-level predictions and their v7.0 decoding.

    ``anchors`` (buffer, in the state_dict): (nl, na, 2) in grid cells of each level (the yaml's
    pixels divided by the stride, as YOLOv5 stores them); ``stride`` (buffer, not saved)."""

    def __init__(self, nc: int, anchors: list, ch: list[int]):
        super().__init__()
        self.nc, self.no = nc, nc + 5
        self.nl, self.na = len(anchors), len(anchors[0]) // 2
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        """The head's inputs, one per level -> raw predictions ``(B, na, ny, nx, 5 + nc)``."""
        out = []
        for i, x in enumerate(xs):
            p = self.m[i](x)
            bs, _, ny, nx = p.shape
            out.append(p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out

    def decode(self, raw: list[Tensor]) -> Tensor:
        """Raw predictions -> ``(B, A, 5 + nc)``: pixel xywh in the letterboxed frame, objectness,
        class probabilities; A runs over levels, then anchors, rows, columns (YOLOv5's order)."""
        z = []
        for i, p in enumerate(raw):
            bs, _, ny, nx, _ = p.shape
            grid, anchor_grid = self._grid(nx, ny, i)
            xy, wh, conf = p.sigmoid().split((2, 2, self.nc + 1), 4)
            xy = (xy * 2 + grid) * self.stride[i]
            wh = (wh * 2) ** 2 * anchor_grid
            z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * nx * ny, self.no))
        return torch.cat(z, 1)

    def _grid(self, nx: int, ny: int, i: int) -> tuple[Tensor, Tensor]:
        """YOLOv5's ``_make_grid``: cell offsets minus 0.5, and the anchors in pixels."""
        a = self.anchors[i]
        shape = 1, self.na, ny, nx, 2
        y, x = (
            torch.arange(ny, device=a.device, dtype=a.dtype),
            torch.arange(nx, device=a.device, dtype=a.dtype),
        )
        yv, xv = torch.meshgrid(y, x, indexing="ij")
        grid = torch.stack((xv, yv), 2).expand(shape) - 0.5
        anchor_grid = (a * self.stride[i]).view((1, self.na, 1, 1, 2)).expand(shape)
        return grid, anchor_grid


_MODULES: dict[str, Any] = {
    "Conv": Conv,
    "C3": C3,
    "SPPF": SPPF,
    "SPP": SPP,
    "Focus": Focus,
    "Bottleneck": Bottleneck,
    "Concat": Concat,
    "nn.Upsample": nn.Upsample,
    "nn.MaxPool2d": nn.MaxPool2d,
    "nn.ZeroPad2d": nn.ZeroPad2d,
    "Detect": Detect,
}
_CHANNEL_MODULES = (Conv, C3, SPPF, SPP, Focus, Bottleneck)  # first arg: output channels (scaled)


def _arg(a: Any, nc: int, anchors: Any) -> Any:
    """A layer argument as YOLOv5's ``eval`` reads it: ``nc``, ``anchors``, ``None`` and the
    booleans by name; any other string (``nearest``) stays a string."""
    if not isinstance(a, str):
        return a
    return {"nc": nc, "anchors": anchors, "None": None, "True": True, "False": False}.get(a, a)


def parse_model(d: dict) -> tuple[nn.Sequential, list[int]]:
    """YOLOv5's ``parse_model`` for the modules of :data:`_MODULES`: (layers, save list)."""
    act = d.get("activation")
    if act not in (None, "nn.SiLU()"):
        raise DataError(f"activation {act!r}: only YOLOv5's default SiLU is supported")
    anchors, nc, gd, gw = d["anchors"], int(d["nc"]), float(d["depth_multiple"]), float(d["width_multiple"])
    na = len(anchors[0]) // 2 if isinstance(anchors, list) else int(anchors)
    no = na * (nc + 5)
    layers, save, ch = [], [], [int(d.get("ch", 3))]
    for i, (f, n, name, args) in enumerate(d["backbone"] + d["head"]):
        m = _MODULES.get(name)
        if m is None:
            raise DataError(f"layer {i}: module {name!r} is not supported (supported: {sorted(_MODULES)})")
        args = [_arg(a, nc, anchors) for a in args]
        n = max(round(n * gd), 1) if n > 1 else n
        c2 = ch[f] if isinstance(f, int) else None
        if m in _CHANNEL_MODULES:
            c1, c2 = ch[f], args[0]
            if c2 != no:
                c2 = math.ceil(c2 * gw / 8) * 8  # YOLOv5's make_divisible(c2 * gw, 8)
            args = [c1, c2, *args[1:]]
            if m is C3:
                args.insert(2, n)
                n = 1
        elif m is Concat:
            c2 = sum(ch[x] for x in f)
        elif m is Detect:
            args.append([ch[x] for x in f])
            if isinstance(args[1], int):  # a number of anchors: the checkpoint holds them (autoanchor)
                args[1] = [list(range(args[1] * 2))] * len(f)
        module = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
        module.i, module.f = i, f
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(module)
        if i == 0:
            ch = []
        ch.append(c2)
    if not isinstance(layers[-1], Detect):
        raise DataError("the last layer must be a YOLOv5 Detect head")
    return nn.Sequential(*layers), sorted(save)


class YOLOv5Model(nn.Module):
    """The network of a YOLOv5 model yaml (a dict with ``depth_multiple`` and
    ``width_multiple``), laid out as the repository's ``DetectionModel``: ``model``
    (nn.Sequential, the Detect head last), ``save``, ``yaml``, ``names``, ``stride``.
    Random weights initialised as YOLOv5 does (bias priors of the head, BatchNorm eps)."""

    def __init__(self, cfg: dict, nc: int | None = None):
        super().__init__()
        self.yaml = deepcopy(cfg)
        if nc is not None:
            self.yaml["nc"] = int(nc)
        self.yaml["ch"] = int(self.yaml.get("ch", 3))
        self.model, self.save = parse_model(deepcopy(self.yaml))
        self.names = [str(i) for i in range(int(self.yaml["nc"]))]
        head = self.head
        s = 256  # YOLOv5's stride probe: one forward of a blank image
        with torch.no_grad():
            self.model.eval()
            raw = self(torch.zeros(1, self.yaml["ch"], s, s))
            self.model.train()
        head.stride.copy_(torch.tensor([s / p.shape[2] for p in raw]))
        a = head.anchors.prod(-1).mean(-1).view(-1)  # YOLOv5's check_anchor_order
        if (a[-1] - a[0]) and (a[-1] - a[0]).sign() != (head.stride[-1] - head.stride[0]).sign():
            head.anchors.copy_(head.anchors.flip(0))
        head.anchors /= head.stride.view(-1, 1, 1)
        self._initialize_biases()
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = BN_EPS, BN_MOMENTUM

    @property
    def head(self) -> Detect:
        return self.model[-1]

    @property
    def stride(self) -> Tensor:
        return self.head.stride

    def _initialize_biases(self) -> None:
        """YOLOv5's priors: objectness for 8 objects per 640 image, classes at 0.6 / (nc - 1)."""
        head = self.head
        with torch.no_grad():
            for mi, s in zip(head.m, head.stride, strict=True):
                b = mi.bias.view(head.na, -1)
                b[:, 4] += math.log(8 / (640 / float(s)) ** 2)
                b[:, 5 : 5 + head.nc] += math.log(0.6 / (head.nc - 0.99999))

    def features(self, x: Tensor, checkpoint: bool = False) -> list[Tensor]:
        """The head's inputs, one per level (YOLOv5's ``_forward_once`` up to the head): layer
        ``m`` reads the outputs named by ``m.f``; those in ``save`` are kept for later layers.
        ``checkpoint``: each layer under activation checkpointing (its input kept, run again in
        backward; eval mode has no randomness, so outputs and gradients are unchanged)."""
        run = _checkpointed if checkpoint else _plain
        outputs: list[Any] = []
        for m in self.model[:-1]:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = run(m, x)
            outputs.append(x if m.i in self.save else None)
        return [x if j == -1 else outputs[j] for j in self.head.f]

    def forward(self, x: Tensor, checkpoint: bool = False) -> list[Tensor]:
        """Raw predictions per level, ``(B, na, ny, nx, 5 + nc)`` (what YOLOv5's loss reads)."""
        feats = self.features(x, checkpoint)
        return _checkpointed(self.head, feats) if checkpoint else self.head(feats)


def _plain(m: nn.Module, x: Any) -> Any:
    return m(x)


def _checkpointed(m: nn.Module, x: Any) -> Any:
    from torch.utils.checkpoint import checkpoint

    if isinstance(x, list):  # Concat and the head take a list of feature maps
        return checkpoint(lambda *xs: m(list(xs)), *x, use_reentrant=False)
    return checkpoint(m, x, use_reentrant=False)


_SCALED_NAME = re.compile(r"yolov5([nsmlx])\.ya?ml")


def load_yolov5_yaml(model: str | Path | dict) -> dict:
    """A YOLOv5 model dict from a dict, a yaml path, or a name that ships with vat.

    The ``yolov5:`` prefix is optional here. ``yolov5n.yaml`` ... ``yolov5x.yaml`` (no such
    file) is vat's ``yolov5.yaml`` at that scale; a yaml with ``scales`` and no
    ``depth_multiple`` takes its scale from its name's letter. Nothing is downloaded."""
    scale = None
    if isinstance(model, dict):
        d = deepcopy(model)
    else:
        text = str(model)
        path = Path(text[len(PREFIX) :] if text.startswith(PREFIX) else text)
        match = _SCALED_NAME.fullmatch(path.name)
        scale = match.group(1) if match else None
        for candidate in (path, YOLOV5_DIR / path.name, YOLOV5_DIR / "yolov5.yaml" if match else None):
            if candidate is not None and candidate.is_file():
                try:
                    d = pyyaml.safe_load(candidate.read_text())
                except (OSError, pyyaml.YAMLError) as e:
                    raise DataError(f"{candidate}: unreadable model yaml ({type(e).__name__}: {e})") from e
                break
        else:
            raise DataError(
                f"{text}: no such YOLOv5 model yaml (nothing is downloaded: give a path, or one that "
                f"ships with vat: yolov5n/s/m/l/x.yaml)"
            )
    if not isinstance(d, dict) or "anchors" not in d:
        raise DataError(
            f"{model if not isinstance(model, dict) else 'model dict'}: no anchors, not a YOLOv5 "
            "(anchor-based) model yaml; ultralytics' anchor-free yamls go to FrozenDetector"
        )
    if "depth_multiple" not in d:
        scales = d.get("scales") or {}
        if scale not in scales:
            raise DataError(f"{model}: pick a scale of {sorted(scales)} by name (e.g. yolov5n.yaml)")
        d["depth_multiple"], d["width_multiple"] = scales[scale]
    d.pop("scales", None)
    return d
