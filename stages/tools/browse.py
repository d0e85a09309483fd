"""browse: the pseudo-labels, with their uncertainties, in the FiftyOne App (not a DVC stage).

It only reads: the Parquet files stay the source of truth; the FiftyOne dataset is a
disposable view of them, rebuilt (and replaced) on every run (vat/browse/dataset.py says
what it holds), served by vat/browse/app.py.

Reads:   data/pseudolabel/boxes.parquet, images.parquet; the manifests of prepare,
         degrade and restore
Writes:  only the FiftyOne database (FIFTYONE_DATABASE_DIR; vat sets it to
         ~/.cache/vat/fiftyone-db unless already set): one persistent dataset, by name.
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages._ui import console, friendly_errors, rich_track
from vat.browse.app import app_url, launch, port_in_use, serve
from vat.browse.dataset import IOU, MANIFESTS, PSEUDO_DIR, build_dataset, pseudo_label_names, summarize
from vat.errors import VatError
from vat.layout import MAIN


@friendly_errors
def command(
    name: str = typer.Option("vat", help="FiftyOne dataset name (rebuilt and replaced on every run)"),
    port: int = typer.Option(5151, help="port the App serves on"),
    address: str = typer.Option("127.0.0.1", help="address the App binds to (0.0.0.0: every interface)"),
    no_launch: bool = typer.Option(False, "--no-launch", help="build the dataset, do not serve the App"),
    pseudo_dir: Path = typer.Option(PSEUDO_DIR, help="folder with boxes.parquet and images.parquet"),
    degraded: Path = typer.Option(MANIFESTS["degraded"], help="manifest of the degraded images"),
    restored: Path = typer.Option(MANIFESTS["restored"], help="manifest of the restored images"),
    clean: Path = typer.Option(MANIFESTS["clean"], help="manifest of the clean images and ground truth"),
    models: Path = typer.Option(MAIN.models, help="D's folder (its class map names the pseudo-labels)"),
) -> None:
    """Browse the pseudo-labels and their uncertainties in the FiftyOne App.

    Reads data/pseudolabel/boxes.parquet and images.parquet and the manifests of prepare,
    degrade and restore; writes only the FiftyOne database (FIFTYONE_DATABASE_DIR, by default
    ~/.cache/vat/fiftyone-db), where the dataset NAME is rebuilt from the Parquet files. One
    group per image with slices degraded / restored / clean; fields ground_truth, pseudo
    (kept), pseudo_all (with `kept`), and TP / FP / FN of pseudo vs ground truth at IoU 0.5
    (eval_tp, ...); saved views eval_patches / eval_all_patches list the TP / FP / FN
    patches. Serves the App until Ctrl-C.
    """
    if not no_launch and port_in_use(address, port):  # before the build, not after
        raise VatError(f"port {port} on {address} is in use; pass another --port")
    manifests = {"degraded": degraded, "restored": restored, "clean": clean}
    dataset = build_dataset(
        name, pseudo_dir, manifests, track=rich_track, pseudo_names=pseudo_label_names(models)
    )
    s = summarize(dataset)
    slices = ", ".join(f"{k} {v}" for k, v in s["per_slice"].items())
    e, a = s["eval"], s["eval_all"]
    console.print(
        f"browse: dataset {name!r}: {s['samples']} samples ({slices}); pseudo-labels kept "
        f"{s['kept']}/{s['all']}; kept TP {e['tp']} FP {e['fp']} FN {e['fn']}, "
        f"all TP {a['tp']} FP {a['fp']} FN {a['fn']} (IoU {IOU})",
        highlight=False,
    )
    if no_launch:
        return
    console.print(f"starting the App on {address}:{port} (10-30 s) ...", highlight=False)
    session = launch(dataset, port=port, address=address, wait=False)
    console.print(
        f"App: {app_url(name, port, address)}  (Ctrl-C stops it; from another machine: "
        f"ssh -N -L {port}:127.0.0.1:{port} <this host>)",
        highlight=False,
    )
    serve(session)
