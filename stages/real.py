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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import typer

from stages import degrade, evaluate, prepare, restore
from stages._ui import console, friendly_errors, rich_track
from vat.config import CommonParams, from_dict, load_common, load_section, read_yaml
from vat.errors import DataError, ParamsError
from vat.io import atomic_dir, write_json
from vat.manifest import Manifest, read_manifest, write_manifest
from vat.seeding import item_seed

OUT = Path("data/real")
REPORTS = Path("reports/real")
CLEAN = Path("data/prepare/manifest.parquet")
RESTORER = Path("data/train_restorer/restorer.json")
MODELS = Path("data/train_detector")
TRANSLATORS = Path("data/train")
UNPAIRED = Path("data/unpaired")


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


def _read(common: CommonParams, pp: prepare.PrepareParams, dp: degrade.DegradeParams, name: str, s: RealSet,
          d: Path, r: Path) -> Path:  # fmt: skip
    """The set's degraded images as a manifest (every scored record in split ``test``); its path."""
    if s.source == "embedded":
        seed = item_seed(common.seed, "real", name) % (2**31)
        emb = replace(pp.embedded, n_train=1, n_val=1)  # only the test scenes are used
        with atomic_dir(d / "prepare") as tmp:
            manifest, _ = prepare._embedded(replace(common, seed=seed), emb, d / "prepare", tmp, rich_track)
            write_manifest(Manifest([x for x in manifest.records if x.split == "test"], manifest.classes),
                           tmp / "manifest.parquet")  # fmt: skip
        deg = replace(dp, method=s.degrade, splits=("test",))
        degrade.run(replace(common, seed=seed), deg, manifest_path=d / "prepare/manifest.parquet",
                    out=d / "degrade", reports=r / "degrade", track=rich_track)  # fmt: skip
        return d / "degrade/manifest.parquet"
    params = replace(pp, source=s.source, root=s.root, annotations=s.annotations, keep_empty=True)
    with atomic_dir(d / "prepare") as tmp:
        manifest, _ = prepare._external(common, params, d / "prepare", tmp)
        keep = [x for x in manifest.records if s.split == "all" or x.split == s.split]
        if not keep:
            raise DataError(f"{s.root}: no image in split {s.split!r} (real.{name}.split; all: every image)")
        write_manifest(Manifest([replace(x, split="test") for x in keep], manifest.classes),
                       tmp / "manifest.parquet")  # fmt: skip
    return d / "prepare/manifest.parquet"


def run(params_file: Path = Path("params.yaml"), device: str = "auto", out: Path = OUT,
        reports: Path = REPORTS, clean_path: Path = CLEAN, spec_path: Path = RESTORER, models: Path = MODELS,
        translators: Path = TRANSLATORS, unpaired: Path = UNPAIRED) -> dict:  # fmt: skip
    """Score every set of params ``real``; returns the summary written to ``reports/metrics.json``."""
    common = load_common(params_file)
    if common.task == "classify":
        raise ParamsError(f"{params_file}: real: test sets without clean pairs are for detection tasks")
    pp = load_section(prepare.PrepareParams, "prepare", params_file)
    dp = load_section(degrade.DegradeParams, "degrade", params_file)
    rp = replace(load_section(restore.RestoreParams, "restore", params_file), splits=("test",))
    ep = replace(load_section(evaluate.EvaluateParams, "evaluate", params_file), split="test")
    arch = json.loads(spec_path.read_text())["arch"] if spec_path.is_file() else "R"
    summary: dict = {}
    for name, s in sets(params_file).items():  # each folder below is written atomically by its step
        d, r = out / name, reports / name
        scored = _read(common, pp, dp, name, s, d, r)
        restore.run(common, rp, scored, d / "no-clean-pairs", spec_path=spec_path, out=d / "restore",
                    reports=r / "restore", device=device, track=rich_track)  # fmt: skip
        restored = d / "restore/manifest.parquet"
        inputs = evaluate.methods(arch, translators=translators, unpaired=unpaired, ablations=d / "-",
                                  study=d / "-", degraded=scored, restored=restored)  # fmt: skip
        inputs.pop("Clean D(I_HQ)")
        result = evaluate.run(common, ep, inputs=inputs, truth_path=scored, models=models, reports=r,
                              device=device, track=rich_track, degraded_path=scored, niqe_from=clean_path,
                              clean_pairs=False)  # fmt: skip
        summary[name] = {
            "source": s.source,
            "root": s.root,
            "degrade": s.degrade,
            "images": result["images"],
            "boxes": sum(len(x.boxes) for x in read_manifest(scored).records),
            "methods": {k: {m: v.get(m) for m in ("map50", "niqe")} for k, v in result["methods"].items()},
        }
    reports.mkdir(parents=True, exist_ok=True)
    write_json(summary, reports / "metrics.json")
    return summary


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Score D on degraded test sets without clean pictures (RTTS, ExDark): Vanilla, Baseline, Unpaired, VaT.

    Params: common, prepare, degrade, restore, evaluate, real. Reads each set, data/prepare/
    (NIQE's clean images), data/train_restorer/, data/train_detector/, data/train/,
    data/unpaired/. Writes data/real/NAME/ and reports/real/ (per set: metrics.json, table.md,
    grid.png).
    """
    m = run(params_file, device=device)
    for name, s in m.items():
        for method, v in s["methods"].items():
            console.print(f"real {name}: {method:40s} mAP@0.5 {v['map50']:.4f}, NIQE {v['niqe']}")
    console.print(f"real: {len(m)} sets -> {REPORTS}/")
