"""real: degraded test sets without clean pairs (RTTS, ExDark), scored beside the synthetic one.

The paper scores its methods twice: on a synthetic test split, where every degraded image
has its clean picture (Table 1 VOCh, PSNR / SSIM), and on real degraded photographs that
have boxes but no clean picture (Table 1's RTTS column, Table 3's ExDark and NIQE). Each
entry of params ``real`` names such a set; ``vat real`` reads it, restores it with the
main run's R, and scores D on it as evaluate does: Vanilla D(I_LQ), the restorer baseline
D(R(I_LQ)), the CycleGAN-style unpaired baseline and VaT (val-selected and last epoch),
each by mAP@0.5 and NIQE (fitted on the main run's clean training images). No PSNR or SSIM:
there is nothing to compare with.

A set is a dataset folder (``source: voc`` for RTTS, ``exdark``, ``yolo``, ``coco``; its
images are used as they are), or ``source: embedded``: scenes generated from their own
seed and degraded by ``degrade`` (e.g. ``haze_depth``), a haze the translator was not
trained on. The embedded default has no real photographs, so its set ``fog`` is of the
second kind: a shifted degradation, not real haze. Its clean scenes are generated to be
degraded and are never read again.

Reads:   params.yaml [common, prepare, degrade, restore, evaluate, real]; each set's
         dataset (``root``); data/prepare/ (clean train images, for NIQE),
         data/train_restorer/, data/train_detector/, data/train/, data/unpaired/
Writes:  data/real/NAME/{prepare,degrade,restore}/   the set's images (degrade: embedded only),
                                                     R's outputs
         reports/real/NAME/   metrics.json, table.md, grid.png (evaluate's, for this set)
         reports/real/metrics.json   every set's mAP and NIQE per method
         data/real/sets.json, data/real/inputs.json   the sets, their folders' fingerprint
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import typer

from stages import _compose
from stages._ui import console, finish, friendly_errors, rich_track
from vat.config import CommonParams, from_dict, load_common, load_section, read_yaml
from vat.data.degradations import DegradeParams
from vat.data.manifest import Manifest, read_manifest, write_manifest
from vat.data.sources import PrepareParams, read_embedded, read_external
from vat.errors import DataError, ParamsError
from vat.eval.scoring import EvaluateParams, evaluate, methods
from vat.eval.summary import write_metrics
from vat.inputs import record, stage_paths
from vat.io import atomic_dir, write_json
from vat.layout import MAIN, MANIFEST, Layout
from vat.models.restorers.running import RestoreParams
from vat.seeding import item_seed

RUNS = ("degrade", "restore")  # run again on each set (stages/_compose.py)


@dataclass(frozen=True)
class RealSet:
    """One entry of ``real``: a degraded test set without clean pictures."""

    source: Literal["embedded", "voc", "yolo", "coco", "exdark"]  # a dataset format, or generated scenes
    root: str | None  # the dataset folder (not for embedded)
    annotations: str | None  # coco: annotation json relative to root
    split: Literal["train", "val", "test", "all"]  # which of its images are scored (all: every one)
    degrade: Literal["haze", "haze_depth", "lowlight", "corruption"] | None  # embedded only: how its scenes
    # are degraded (the degrade section's other params); null for a dataset of real photographs

    def __post_init__(self) -> None:
        if self.source == "embedded" and (self.degrade is None or self.root):
            raise ValueError("source embedded needs degrade (a method) and no root")
        if self.source != "embedded" and (self.degrade is not None or not self.root):
            raise ValueError(f"source {self.source} needs root (the dataset folder) and degrade: null")


def sets(params_file: Path = Path("params.yaml")) -> dict[str, RealSet]:
    """The sets of params ``real`` (an entry set to null is left out: a profile can drop one)."""
    data = read_yaml(params_file).get("real")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{params_file}: real: expected a mapping of set name -> set, got {data!r}")
    return {k: from_dict(RealSet, v, f"{params_file}: real.{k}") for k, v in data.items() if v is not None}


def set_layout(layout: Layout, name: str) -> Layout:
    """``layout`` with prepare, degrade and restore writing under ``data/real/NAME/`` (reports
    under ``reports/real/NAME/``); D, R and the translators stay the main run's."""
    d, r = layout.out("real") / name, layout.report("real") / name
    return layout.within(("prepare", *RUNS), d, r, layout.resume("real") / name)


def _read(common: CommonParams, pp: PrepareParams, dp: DegradeParams, name: str, s: RealSet,
          moved: Layout) -> Layout:  # fmt: skip
    """The set's degraded images as a manifest (every scored record in split ``test``); returns
    the layout whose clean and degraded manifests are both it (no clean pictures)."""
    d = moved.out("prepare")
    if s.source == "embedded":
        seed = item_seed(common.seed, "real", name) % (2**31)
        emb = replace(pp.embedded, n_train=1, n_val=1)  # only the test scenes are used
        with atomic_dir(d) as tmp:
            manifest, _ = read_embedded(replace(common, seed=seed), emb, d, tmp, rich_track)
            write_manifest(Manifest([x for x in manifest.records if x.split == "test"], manifest.classes),
                           tmp / MANIFEST)  # fmt: skip
        deg = replace(dp, method=s.degrade, splits=("test",))
        _compose.run("degrade", replace(common, seed=seed), deg, moved, track=rich_track)
        scored = moved.out("degrade")
    else:
        params = replace(pp, source=s.source, root=s.root, annotations=s.annotations, keep_empty=True)
        with atomic_dir(d) as tmp:
            manifest, _ = read_external(common, params, d, tmp)
            keep = [x for x in manifest.records if s.split == "all" or x.split == s.split]
            if not keep:
                raise DataError(
                    f"{s.root}: no image in split {s.split!r} (real.{name}.split; all: every image)"
                )
            write_manifest(Manifest([replace(x, split="test") for x in keep], manifest.classes),
                           tmp / MANIFEST)  # fmt: skip
        scored = d
    return moved.moved("prepare", scored, moved.report("prepare")).moved(
        "degrade", scored, moved.report("degrade")
    )


def run(params_file: Path = Path("params.yaml"), layout: Layout = MAIN, *, device: str = "auto",
        track=rich_track) -> dict:  # fmt: skip
    """Score every set of params ``real``; returns the summary written to ``reports/real/metrics.json``."""
    common = load_common(params_file)
    if common.task == "classify":
        raise ParamsError(f"{params_file}: real: test sets without clean pairs are for detection tasks")
    pp = load_section(PrepareParams, "prepare", params_file)
    dp = load_section(DegradeParams, "degrade", params_file)
    rp = replace(load_section(RestoreParams, "restore", params_file), splits=("test",))
    ep = replace(load_section(EvaluateParams, "evaluate", params_file), split="test")
    spec = layout.restorer_spec
    arch = json.loads(spec.read_text())["arch"] if spec.is_file() else "R"
    summary: dict = {}
    for name, s in sets(params_file).items():  # each folder below is written atomically by its step
        scored = _read(common, pp, dp, name, s, set_layout(layout, name))
        _compose.run("restore", common, rp, scored, device=device, track=track, clean_pairs=False)
        inputs = methods(arch, scored, extras=False, clean=False)
        r = layout.report("real") / name
        result = evaluate(common, ep, inputs, scored, r, device=device, track=track, niqe_from=layout.clean,
                          clean_pairs=False)  # fmt: skip
        summary[name] = {
            "source": s.source,
            "root": s.root,
            "degrade": s.degrade,
            "images": result["images"],
            "boxes": sum(len(x.boxes) for x in read_manifest(scored.clean).records),
            "methods": {k: {m: v.get(m) for m in ("map50", "niqe")} for k, v in result["methods"].items()},
        }
    reports = layout.report("real")
    reports.mkdir(parents=True, exist_ok=True)
    write_metrics("real", summary, reports)
    layout.out("real").mkdir(parents=True, exist_ok=True)  # DVC's output, even with no set
    write_json(sorted(summary), layout.out("real") / "sets.json")
    record(stage_paths(read_yaml(params_file))["real"], layout.out("real"), layout.data)
    return summary


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Score D on degraded test sets without clean pictures (RTTS, ExDark, a shifted haze)."""
    m = run(params_file, device=device)
    for name, s in m.items():
        for method, v in s["methods"].items():
            console.print(f"real {name}: {method:40s} mAP@0.5 {v['map50']:.4f}, NIQE {v['niqe']}")
    finish(f"real: {len(m)} sets -> {MAIN.report('real')}/")
