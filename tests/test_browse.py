"""browse: the FiftyOne dataset built from fake pseudo-labels, and the App in headless Chromium.

FiftyOne runs only in child processes (this file run as a script: ``build`` or ``serve``),
each with FIFTYONE_DATABASE_NAME unique to this test session and FIFTYONE_DATABASE_DIR
under a temporary folder, so no test touches a user's database (FiftyOne attaches to any
database service the user already runs, whatever its folder: the name is what isolates)
and no FiftyOne import leaks into other tests.

The fake set: classes car, person; images a, b, c (and d, never pseudo-labelled).
a (degraded domain): ground truth car + person; pseudo-labels: a kept car on the car (TP),
  a kept car elsewhere (FP), a dropped person on the person (so among the kept labels the
  person is missed, FN; among all boxes it is a TP).
b (clean domain): ground truth car; a kept car on it (TP).
c (degraded domain): no ground truth box, no pseudo-label; no restored image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # when run as a script by the tests below

from vat.data.manifest import Box, Manifest, Record, write_manifest  # noqa: E402

CLASSES = ["car", "person"]
W, H = 64, 48
GT = {
    "a": [Box(0, 10, 10, 30, 30), Box(1, 40, 5, 60, 40)],
    "b": [Box(0, 5, 5, 25, 25)],
    "c": [],
    "d": [Box(0, 1, 1, 9, 9)],
}
UNC = {"aleatoric": 0.5, "total": 1.0}
BOXES = [  # image_id, domain, source, cls, conf, x1, y1, x2, y2, epistemic, weight, kept
    ("a", "degraded", "degraded", 0, 0.9, 11, 10, 30, 31, 0.125, 0.8, True),  # TP
    ("a", "degraded", "restored", 0, 0.6, 0, 30, 15, 46, 0.375, 0.5, True),  # FP
    ("a", "degraded", "restored", 1, 0.4, 41, 6, 60, 40, 2.5, 0.0, False),  # dropped (TP among all)
    ("b", "clean", "clean", 0, 0.8, 5, 5, 25, 26, 0.25, 0.7, True),  # TP
]
IMAGES = [("a", "degraded", "train"), ("b", "clean", "train"), ("c", "degraded", "train")]
BUILD_TIMEOUT, SERVE_TIMEOUT = 120, 90


def _write_boxes(rows, path: Path) -> None:
    cols = ["image_id", "domain", "source", "cls", "confidence", "x1", "y1", "x2", "y2"]
    cols += ["aleatoric", "epistemic", "total", "weight", "kept"]
    data = {c: [] for c in cols}
    for image_id, domain, source, cls, conf, x1, y1, x2, y2, epi, weight, kept in rows:
        vals = [image_id, domain, source, cls, conf, x1, y1, x2, y2, UNC["aleatoric"], epi, UNC["total"]]
        for c, v in zip(cols, [*vals, weight, kept], strict=True):
            data[c].append(v)
    f32 = pa.float32()
    schema = pa.schema(
        [("image_id", pa.string()), ("domain", pa.string()), ("source", pa.string()), ("cls", pa.int32())]
        + [(c, f32) for c in cols[4:13]]
        + [("kept", pa.bool_())]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(data, schema=schema), path)


def _scene(image_id: str, slice_: str, rng: np.random.Generator) -> np.ndarray:
    """A grey road with a coloured block per object; degraded = hazy and noisy."""
    image = np.full((H, W, 3), 90, np.float32)
    for b in GT[image_id]:
        image[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)] = (200, 40, 40) if b.cls == 0 else (40, 60, 200)
    if slice_ != "clean":
        noise = rng.normal(0, 14 if slice_ == "degraded" else 3, (H, W, 1))
        image = (0.5 if slice_ == "degraded" else 0.9) * image + 60 + noise
    return np.clip(image, 0, 255).astype(np.uint8)


def make_inputs(root: Path) -> dict:
    """Images, three manifests and two pseudo-label folders (the second without the FP)."""
    rng = np.random.default_rng(0)
    manifests = {}
    for slice_, ids in (("clean", "abcd"), ("degraded", "abcd"), ("restored", "abd")):
        records = []
        for image_id in ids:
            path = root / slice_ / f"{image_id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_scene(image_id, slice_, rng)).save(path)
            records.append(Record(image_id, str(path), W, H, "train", "embedded", boxes=GT[image_id]))
        manifests[slice_] = root / f"{slice_}.parquet"
        write_manifest(Manifest(records, CLASSES), manifests[slice_])
    for folder, rows, images in (
        ("pseudo", BOXES, IMAGES),
        ("pseudo2", [b for b in BOXES if b[9] != 0.375], IMAGES),  # without the FP
        ("pseudo_empty", [], []),
    ):
        _write_boxes(rows, root / folder / "boxes.parquet")
        schema = pa.schema([("image_id", pa.string()), ("domain", pa.string()), ("split", pa.string())])
        table = pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in images], schema=schema)
        pq.write_table(table, root / folder / "images.parquet")
    return {
        "pseudo_dir": str(root / "pseudo"),
        "pseudo_dir2": str(root / "pseudo2"),
        "pseudo_empty": str(root / "pseudo_empty"),
        "manifests": {k: str(v) for k, v in manifests.items()},
    }


# ---------------------------------------------------------------------------------------------
# child processes (FiftyOne lives only here)


def _child_build(args: dict) -> dict:
    import fiftyone as fo

    from vat.browse import dataset as browse_ds
    from vat.errors import DataError

    name = args["name"]
    t0 = time.time()
    ds = browse_ds.build_dataset(
        name, Path(args["pseudo_dir"]), {k: Path(v) for k, v in args["manifests"].items()}
    )
    facts = {"build_s": time.time() - t0, "summary": browse_ds.summarize(ds)}
    facts["persistent"] = ds.persistent
    facts["media_type"] = ds.media_type
    facts["group_slices"] = sorted(ds.group_slices)
    facts["default_group_slice"] = ds.default_group_slice
    facts["schema"] = sorted(ds.get_field_schema(flat=True))
    samples = {}
    for s in ds.select_group_slices(ds.group_slices):
        key = f"{s.image_id}/{s.group.name}"
        d = {f: s[f] for f in ("split", "domain", "pseudolabelled")}
        for f in ("ground_truth", "pseudo", "pseudo_all"):
            d[f] = None if s[f] is None else len(s[f].detections)
        for f in ("eval_tp", "eval_fp", "eval_fn", "eval_all_tp", "eval_all_fp", "eval_all_fn"):
            d[f] = s[f] if s.has_field(f) else None
        d["boxes"] = [
            {
                k: det[k]
                for k in ("label", "bounding_box", "confidence", *browse_ds.FLOAT_ATTRS, "source", "kept")
            }
            for det in (s.pseudo_all.detections if s.pseudo_all is not None else [])
        ]
        d["gt_boxes"] = [det.bounding_box for det in s.ground_truth.detections] if s.ground_truth else []
        samples[key] = d
    facts["samples"] = samples
    facts["patches"] = ds.to_evaluation_patches("eval").count_values("type")
    facts["saved_views"] = sorted(ds.list_saved_views())
    facts["saved_patches"] = ds.load_saved_view("eval_patches").count_values("type")
    facts["saved_all_patches"] = ds.load_saved_view("eval_all_patches").count_values("type")
    facts["saved_labelled"] = sorted(
        f"{s.image_id}/{s.group.name}" for s in ds.load_saved_view("pseudolabelled")
    )
    facts["evaluations"] = sorted(ds.list_evaluations())
    facts["iou"] = ds.get_evaluation_info("eval").config.iou
    # rebuilding replaces (and picks up a changed Parquet file)
    t0 = time.time()
    ds2 = browse_ds.build_dataset(
        name, Path(args["pseudo_dir2"]), {k: Path(v) for k, v in args["manifests"].items()}
    )
    facts["rebuild_s"] = time.time() - t0
    facts["rebuild_summary"] = browse_ds.summarize(ds2)
    facts["datasets"] = [n for n in fo.list_datasets() if n.startswith(name)]
    try:
        browse_ds.build_dataset(name, Path(args["pseudo_dir"]), args["manifests"], overwrite=False)
        facts["overwrite_false"] = "no error"
    except DataError as e:
        facts["overwrite_false"] = str(e)
    fo.delete_dataset(name)
    empty = browse_ds.build_dataset(f"{name}-empty", Path(args["pseudo_empty"]), args["manifests"])
    facts["empty_summary"] = browse_ds.summarize(empty)
    empty.delete()
    return facts


def _child_serve(args: dict) -> None:
    from vat.browse import app as browse_app
    from vat.browse import dataset as browse_ds

    # As at a terminal: Ctrl-C raises KeyboardInterrupt. A parent started in the background
    # without job control (`cmd &` in a script, nohup) hands its children SIGINT ignored,
    # and Python then installs no handler, so the SIGINT below would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    ds = browse_ds.build_dataset(args["name"], Path(args["pseudo_dir"]), args["manifests"])
    t0 = time.time()
    session = browse_app.launch(ds, port=args["port"], wait=False)
    info = {
        "pids": browse_app.server_pids(),
        "url": browse_app.app_url(args["name"], args["port"]),
        "launch_s": time.time() - t0,
    }
    tmp = Path(args["info"] + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.rename(args["info"])
    browse_app.serve(session)  # until SIGINT, as at the terminal


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def fo_env(tmp_path_factory):
    """Environment for FiftyOne children: own database folder and name; removed afterwards."""
    db = tmp_path_factory.mktemp("fiftyone-db")
    env = {
        **os.environ,
        "FIFTYONE_DATABASE_DIR": str(db),
        "FIFTYONE_DATABASE_NAME": f"vat-test-{uuid.uuid4().hex[:8]}",
        "FIFTYONE_DO_NOT_TRACK": "true",
        "PYTHONPATH": str(ROOT),
    }
    yield env
    if _mongod_gone(db):
        shutil.rmtree(db, ignore_errors=True)


def _mongod_gone(db: Path, timeout: float = 15) -> bool:
    """Wait for the mongod serving our folder to exit with its last client.

    Never end it ourselves: another FiftyOne process of this user may have attached to it
    (FiftyOne reuses any running database service, whatever its folder). Then the folder
    stays, and pytest's tmp rotation removes it later.
    """
    import psutil

    def running() -> bool:
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or []
            if "--dbpath" in cmd and str(db) in cmd:
                return True
        return False

    deadline = time.time() + timeout
    while running():
        if time.time() > deadline:
            return False
        time.sleep(0.5)
    return True


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("browse-inputs"))


def _run_child(mode: str, args: dict, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, __file__, mode, json.dumps(args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _digest(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


# ---------------------------------------------------------------------------------------------
# tests


def test_missing_inputs_name_file_and_stage(tmp_path, inputs):
    from typer.testing import CliRunner

    from stages.tools import browse
    from vat.browse import dataset as browse_ds
    from vat.errors import DataError

    with pytest.raises(DataError, match=r"boxes\.parquet: not found; the `pseudolabel` stage"):
        browse_ds.read_inputs(tmp_path / "nothing", {k: Path(v) for k, v in inputs["manifests"].items()})
    manifests = {**inputs["manifests"], "restored": str(tmp_path / "nope.parquet")}
    with pytest.raises(DataError, match=r"nope\.parquet: not found; the `restore` stage"):
        browse_ds.read_inputs(Path(inputs["pseudo_dir"]), {k: Path(v) for k, v in manifests.items()})
    # through the command: one red line, exit status 2, before FiftyOne is touched
    import typer

    app = typer.Typer()
    app.command()(browse.command)
    res = CliRunner().invoke(app, ["--pseudo-dir", str(tmp_path / "nothing"), "--no-launch"])
    assert res.exit_code == 2
    assert "pseudolabel" in res.output and "boxes.parquet" in res.output


def test_bad_rows_are_named(tmp_path, inputs):
    from vat.browse import dataset as browse_ds
    from vat.errors import DataError

    manifests = {k: Path(v) for k, v in inputs["manifests"].items()}
    bad = tmp_path / "bad"
    _write_boxes([("zz", "degraded", "degraded", 0, 0.9, 1, 1, 5, 5, 0.1, 1.0, True)], bad / "boxes.parquet")
    shutil.copy(Path(inputs["pseudo_dir"]) / "images.parquet", bad / "images.parquet")
    with pytest.raises(DataError, match=r"degraded image ids are not in .*degraded\.parquet.*'zz'"):
        browse_ds.read_inputs(bad, manifests)
    _write_boxes([("a", "degraded", "elsewhere", 0, 0.9, 1, 1, 5, 5, 0.1, 1.0, True)], bad / "boxes.parquet")
    with pytest.raises(DataError, match=r"column source has values \['elsewhere'\]"):
        browse_ds.read_inputs(bad, manifests)


def test_build_dataset(fo_env, inputs):
    parquet = [
        *Path(inputs["pseudo_dir"]).glob("*.parquet"),
        *Path(inputs["pseudo_dir2"]).glob("*.parquet"),
        *inputs["manifests"].values(),
    ]
    before = _digest(parquet)
    res = _run_child("build", {**inputs, "name": "vat-test-build"}, fo_env, BUILD_TIMEOUT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    facts = json.loads(res.stdout.strip().splitlines()[-1])
    assert _digest(parquet) == before  # Parquet stays the source of truth, never edited

    assert facts["media_type"] == "group" and facts["persistent"]
    assert facts["group_slices"] == ["clean", "degraded", "restored"]
    assert facts["default_group_slice"] == "degraded"
    s = facts["summary"]
    assert s["samples"] == 8 and s["per_slice"] == {"degraded": 3, "restored": 2, "clean": 3}
    assert (s["kept"], s["all"]) == (3, 4)
    assert s["eval"] == {"tp": 2, "fp": 1, "fn": 1}
    assert s["eval_all"] == {"tp": 3, "fp": 1, "fn": 0}
    for field in ("pseudo.detections.epistemic", "pseudo_all.detections.kept", "pseudo.detections.source"):
        assert field in facts["schema"]
    for field in ("image_id", "split", "domain", "pseudolabelled", "eval_tp", "eval_fp", "eval_fn"):
        assert field in facts["schema"]

    smp = facts["samples"]
    assert sorted(smp) == ["a/clean", "a/degraded", "a/restored", "b/clean", "b/degraded", "b/restored"] + [
        "c/clean",
        "c/degraded",
    ]
    a = smp["a/degraded"]
    assert (a["ground_truth"], a["pseudo"], a["pseudo_all"]) == (2, 2, 3)
    assert (a["eval_tp"], a["eval_fp"], a["eval_fn"]) == (1, 1, 1)
    assert (a["eval_all_tp"], a["eval_all_fp"], a["eval_all_fn"]) == (2, 1, 0)
    assert a["domain"] == "degraded" and a["split"] == "train" and a["pseudolabelled"]
    # the restored slice shows the degraded domain's labels, unevaluated (no double count)
    r = smp["a/restored"]
    assert (r["pseudo"], r["pseudo_all"], r["eval_tp"], r["domain"]) == (2, 3, None, "degraded")
    # labelled in the other domain only: no pseudo field at all; labelled without a box: empty
    assert smp["a/clean"]["pseudo"] is None and not smp["a/clean"]["pseudolabelled"]
    assert smp["b/degraded"]["pseudo"] is None and smp["b/restored"]["pseudo"] is None
    assert (smp["b/clean"]["pseudo"], smp["b/clean"]["eval_tp"], smp["b/clean"]["domain"]) == (1, 1, "clean")
    c = smp["c/degraded"]
    assert (c["ground_truth"], c["pseudo"], c["eval_tp"], c["eval_fn"]) == (0, 0, 0, 0)

    boxes = {b["epistemic"]: b for b in a["boxes"]}
    fp, tp, dropped = boxes[0.375], boxes[0.125], boxes[2.5]
    assert (fp["label"], fp["source"], fp["kept"]) == ("car", "restored", True)
    assert fp["confidence"] == pytest.approx(0.6) and fp["weight"] == 0.5
    assert (fp["aleatoric"], fp["total"]) == (0.5, 1.0)
    assert (dropped["label"], dropped["kept"], dropped["weight"]) == ("person", False, 0.0)
    assert tp["bounding_box"] == pytest.approx([11 / W, 10 / H, 19 / W, 21 / H])
    assert smp["a/degraded"]["gt_boxes"][0] == pytest.approx([10 / W, 10 / H, 20 / W, 20 / H])

    # the default (degraded) slice; b's car is untyped: b was pseudo-labelled as clean only
    assert facts["patches"] == {"tp": 1, "fp": 1, "fn": 1, "null": 1}
    assert facts["saved_views"] == ["eval_all_patches", "eval_patches", "pseudolabelled"]
    assert facts["saved_patches"] == {"tp": 2, "fp": 1, "fn": 1}
    assert facts["saved_all_patches"] == {"tp": 3, "fp": 1}
    assert facts["saved_labelled"] == ["a/degraded", "b/clean", "c/degraded"]
    assert facts["evaluations"] == ["eval", "eval_all"] and facts["iou"] == 0.5

    # rebuilt from the second folder (no FP): replaced, not duplicated, no leftovers
    assert facts["datasets"] == ["vat-test-build"]
    r2 = facts["rebuild_summary"]
    assert r2["samples"] == 8 and (r2["kept"], r2["all"]) == (2, 3)
    assert r2["eval"] == {"tp": 2, "fp": 0, "fn": 1}
    assert "exists" in facts["overwrite_false"]
    e = facts["empty_summary"]
    assert (e["samples"], e["kept"], e["all"], e["eval"]["tp"]) == (0, 0, 0, 0)


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="no chromium binary; install Debian's chromium: apt-get install -y chromium",
)
def test_app_in_headless_chromium(fo_env, inputs, tmp_path):
    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = "vat-test-app"
    info_path = tmp_path / "server.json"
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "serve",
            json.dumps({**inputs, "name": name, "port": port, "info": str(info_path)}),
        ],
        env=fo_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C at the terminal reaches pytest, not the server
    )
    descendants = []
    try:
        deadline = time.time() + SERVE_TIMEOUT
        while not info_path.exists():
            assert child.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.time() < deadline, "the App did not start in time"
            time.sleep(0.5)
        info = json.loads(info_path.read_text())
        assert info["pids"], "launch recorded no server process"
        with urllib.request.urlopen(info["url"], timeout=10) as resp:
            assert resp.status == 200

        png = ROOT / "reports" / "browse" / "app.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        png.unlink(missing_ok=True)
        t0 = time.time()
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
            + ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
            + [f"--user-data-dir={tmp_path / 'chromium'}", f"--screenshot={png}", "--dump-dom"]
            + ["--window-size=1600,900", "--virtual-time-budget=20000", info["url"]],
            capture_output=True,
            text=True,
            timeout=90,
        ).stdout
        chromium_s = time.time() - t0
        assert png.is_file(), "chromium wrote no screenshot"
        pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
        assert pixels.shape == (900, 1600) and pixels.std() > 10, "blank screenshot"
        assert "FiftyOne" in dom and name in dom
        assert "No dataset selected" not in dom
        descendants = psutil.Process(child.pid).children(recursive=True)
    finally:
        child.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()
    assert child.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]

    def alive(pid):
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.time() + 15  # the database service leaves with its last client
    watched = set(info["pids"]) | {p.pid for p in descendants}
    while any(alive(pid) for pid in watched) and time.time() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in info["pids"] if alive(pid)], "a recorded server process survived"
    assert not [pid for pid in watched if alive(pid)], "a process started by the child survived"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the App still answers"
    print(f"launch {info['launch_s']:.1f} s, chromium {chromium_s:.1f} s")


if __name__ == "__main__":
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "build":
        print(json.dumps(_child_build(args)))
    elif mode == "serve":
        _child_serve(args)
