"""The train stage on a few tiny scenes: outputs, resume, NaN stop, labels never read, speed options."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import lively_detector

from stages import degrade, prepare, pseudolabel, restore, train, train_restorer
from vat.config import CommonParams, load_section
from vat.data.manifest import Box, read_manifest, write_manifest
from vat.layout import Layout
from vat.models.translator import load_translator
from vat.seeding import item_seed
from vat.train.config import TrainParams
from vat.train.data import crop_targets, load_training_data, make_batch
from vat.train.loop import TrainingError, lr_factor
from vat.train.results import build_translator
from vat.train.speed import Speed

ROOT = Path(__file__).resolve().parents[1]
COMMON = CommonParams(
    seed=3, task="haze", profile="tiny", classes=["bicycle", "bus", "car", "motorbike", "person"]
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """prepare -> degrade -> identity R -> restore, a lively random D, pseudo-labels."""
    from stages.tools import profile
    from vat.models.detectors import save_detector

    base = tmp_path_factory.mktemp("train")
    p = base / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    L = at(base)
    pp = load_section(prepare.PrepareParams, "prepare", p)
    pp = replace(pp, embedded=replace(pp.embedded, width=64, height=48, n_train=8, n_val=2, n_test=2))
    prepare.run(COMMON, pp, L)
    degrade.run(COMMON, load_section(degrade.DegradeParams, "degrade", p), L)
    tp = replace(load_section(train_restorer.TrainRestorerParams, "train_restorer", p), arch="identity")
    train_restorer.run(COMMON, tp, L, device="cpu")
    restore.run(COMMON, load_section(restore.RestoreParams, "restore", p), L, device="cpu")
    det = lively_detector(nc=5, imgsz=64)
    det.model.names = dict(enumerate(COMMON.classes))
    L.models.mkdir()
    save_detector(det, L.models / "detector.pt", imgsz=64)
    pl = replace(load_section(pseudolabel.PseudolabelParams, "pseudolabel", p), conf=0.3, k=3)
    pseudolabel.run(COMMON, pl, L, device="cpu")
    return base


def at(base) -> Layout:
    """Every stage's folders under ``base`` (data) and ``base/reports``."""
    return Layout(base, base / "reports")


def _data(base):
    L = at(base)
    return load_training_data(L.pseudolabels, L.clean, L.degraded, L.restored)


PARAMS = TrainParams(
    translator="vat-w4", identity_init=False, gate_init=0.018, gate_lr=1.0, epochs=2, batch=2, crop=32,
    lr=1e-3, weight_decay=1e-4,
    schedule="cosine", restart_steps=3, min_lr=1e-6, cycle_weight=1.0, mle_weight=1.0, use_cycle=True,
    use_mle=True, use_gate=True, mixup="uncertainty", alpha=0.5, fold_lambda=False, gate_flow=False,
    clean_weights=False, labels="cached", select="val", val_every=1, checkpoint_every=1, log_every=1,
)  # fmt: skip


def trained_at(base, name, clean=None) -> Layout:
    """The fixture's layout with train writing to ``base/name`` (``clean``: another clean manifest)."""
    L = at(base).moved("train", base / name, base / f"{name}.reports", base / f"{name}.resume")
    return L if clean is None else L.moved("prepare", clean.parent, base / "reports/prepare")


def _run(base, name, params=PARAMS, clean=None, **kw):
    return train.run(COMMON, params, trained_at(base, name, clean), device="cpu", **kw)


def _weights(path):
    return load_translator(path)[0].state_dict()


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pseudolabels_exist_for_the_fixture(base):
    data = _data(base)
    assert len(data.degraded) == 4 and len(data.clean) == 4
    assert sum(len(d.boxes) for d in data.degraded) > 0  # the D is lively: there is something to learn from
    assert not {d.image_id for d in data.degraded} & {c.image_id for c in data.clean}


def test_validation_runs_only_where_it_can_choose(base):
    """One epoch end: nothing to select, so no validation (the last is kept); with val_every 2
    over 3 epochs the validated ends are 2 and the last."""
    one = _run(base, "one", replace(PARAMS, epochs=1))
    _, meta = load_translator(base / "one/translator.pt")
    assert one["val"] == [] and one["steps"] == 2 and meta == meta | {"epoch": 1, "selected": "last"}
    assert not (base / "one.reports/live/plots/metrics/val").exists()
    assert (base / "one.reports/samples.png").is_file()  # the pictures still show val images
    three = _run(base, "three", replace(PARAMS, epochs=3, val_every=2))
    assert [v["epoch"] for v in three["val"]] == [2, 3]
    assert load_translator(base / "three/translator.pt")[1]["selected"] == "val"


def test_train_writes_selected_last_metrics_and_live_logs(base):
    m = _run(base, "a")
    assert m["steps"] == 4 and m["steps_per_epoch"] == 2 and [v["epoch"] for v in m["val"]] == [1, 2]
    best = max(m["val"], key=lambda v: v["val_map50"])
    model, meta = load_translator(base / "a/translator.pt")
    assert meta["selected"] == "val" and meta["epoch"] == best["epoch"] and model.t_b is None
    _, last = load_translator(base / "a/last.pt")
    assert last["epoch"] == 2 and last["selected"] == "last"
    tsv = base / "a.reports/live/plots/metrics/train/total.tsv"
    rows = tsv.read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["step", "total"] and len(rows) == 1 + 4
    assert (base / "a.reports/live/plots/metrics/val/map50.tsv").is_file()
    assert (base / "a.reports/samples.png").is_file() and (base / "a.reports/metrics.json").is_file()
    assert not (base / "a.resume").exists()  # removed once the outputs are in place


def test_killed_and_resumed_run_ends_with_the_same_weights(base):
    if not (base / "a/last.pt").is_file():
        _run(base, "a")
    for stop in (1, 3):  # at an epoch's middle and in the second epoch
        name = f"kill{stop}"
        r = _run(base, name, stop_after=stop)
        assert r["interrupted"] and (base / f"{name}.resume/state.pt").is_file()
        assert not (base / name).exists() and not (base / f"{name}.reports").exists()
        said = []
        m = _run(base, name, say=said.append)
        assert m["steps"] == 4 and m["resumed_at_step"] == stop and m["stale_state"] is None
        assert said == [f"resuming at step {stop} of 4 from {base / f'{name}.resume/state.pt'}"]
        assert _same(_weights(base / "a/last.pt"), _weights(base / f"{name}/last.pt"))
        assert _same(_weights(base / "a/translator.pt"), _weights(base / f"{name}/translator.pt"))
        assert not (base / f"{name}.resume").exists() and _temporaries(base) == []


def _temporaries(base) -> list[str]:
    return sorted(p.name for p in base.rglob("*") if ".tmp-" in p.name)


def test_stale_states_are_all_kept_and_fresh_sets_the_state_aside_too(base):
    _run(base, "stale", stop_after=1)
    said = []
    _run(base, "stale", params=replace(PARAMS, lr=2e-3), stop_after=1, say=said.append)  # stale-1
    m = _run(base, "stale", params=replace(PARAMS, lr=3e-3), say=said.append)  # stale-2
    stale = [base / f"stale.resume.stale-{n}" for n in (1, 2)]
    assert m["stale_state"] == str(stale[1]) and m["resumed_at_step"] is None
    assert all((s / "state.pt").is_file() for s in stale)  # the first is kept, not replaced
    assert said == [f"starting over (it is for other params or inputs); the resume state was moved to {s}"
                    for s in stale]  # fmt: skip
    _run(base, "stale", stop_after=1)
    m = _run(base, "stale", fresh=True)  # same params: used, but for --fresh
    assert m["stale_state"] == str(base / "stale.resume.stale-3") and (base / "stale.resume.stale-3").is_dir()


def test_an_unreadable_state_stops_with_how_to_start_over_and_keeps_everything(base):
    r = _run(base, "bad", stop_after=1)
    state = Path(r["state"])
    state.write_bytes(b"not a checkpoint")
    with pytest.raises(
        TrainingError, match=r"bad\.resume/state\.pt: not a readable torch checkpoint.*--fresh"
    ):
        _run(base, "bad")
    assert state.read_bytes() == b"not a checkpoint" and not (base / "bad").exists()
    m = _run(base, "bad", fresh=True)
    assert m["stale_state"] and (base / "bad.resume.stale-1/state.pt").read_bytes() == b"not a checkpoint"
    assert (base / "bad/translator.pt").is_file() and _temporaries(base) == []


def _snapshot(*folders) -> dict:
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stage", ["train", "unpaired"])
def test_a_failure_after_training_leaves_the_previous_outputs_as_they_were(base, monkeypatch, stage):
    """#21: the new translators, metrics and logs are swapped in only when all of them are written;
    the resume state stays, and the next run finishes from it without training again."""
    import vat.train.loop

    name = f"fail_{stage}"

    def run(epochs):
        if stage == "train":
            return _run(base, name, params=replace(PARAMS, epochs=epochs))
        return _unpaired(base, name, epochs=epochs)

    run(1)
    folders = (base / name, base / f"{name}.reports")
    before = _snapshot(*folders)
    assert any(k.endswith("translator.pt") for k in before) and any("/live/" in k for k in before)

    def broken(*args, **kwargs):
        raise RuntimeError("the sample grid could not be drawn")

    monkeypatch.setattr(vat.train.loop, "samples", broken)
    with pytest.raises(RuntimeError, match="sample grid"):
        run(2)  # other weights, other metrics
    assert _snapshot(*folders) == before and _temporaries(base) == []
    assert (base / f"{name}.resume/state.pt").is_file()
    monkeypatch.undo()
    m = run(2)
    assert m["resumed_at_step"] == m["steps"] == 4 and _snapshot(*folders) != before


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(base, monkeypatch):
    import vat.train.losses

    real, calls = vat.train.losses.vat_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            out["total"] = out["total"] * float("nan")
        return out

    monkeypatch.setattr(vat.train.losses, "vat_loss", poisoned)
    with pytest.raises(TrainingError, match=r"step 2: non-finite loss .*state\.pt \(step 2\)"):
        _run(base, "nan")
    assert not (base / "nan").exists()
    from vat.models.checkpoints import read_checkpoint

    assert read_checkpoint(base / "nan.resume/state.pt")["step"] == 2


def test_training_reads_no_ground_truth_of_the_train_split(base, tmp_path):
    """Scrambling every train-split box of the clean manifest changes nothing (select: last)."""
    params = replace(PARAMS, select="last", epochs=1)
    _run(base, "truth", params=params)
    m = read_manifest(base / "prepare/manifest.parquet")
    for r in m.records:
        if r.split == "train":
            r.boxes = [Box(0, 1.0, 1.0, 5.0, 5.0)]
    write_manifest(m, tmp_path / "manifest.parquet")
    _run(base, "scrambled", params=params, clean=tmp_path / "manifest.parquet")
    assert _same(_weights(base / "truth/last.pt"), _weights(base / "scrambled/last.pt"))


def test_batches_are_unpaired_deterministic_and_crop_boxes(base):
    data = _data(base)
    a, b = make_batch(data, 5, 2, 32, seed=1), make_batch(data, 5, 2, 32, seed=1)
    assert torch.equal(a.lq, b.lq) and torch.equal(a.hq, b.hq) and a.ids_lq == b.ids_lq
    assert a.lq.shape == (2, 3, 32, 32) and a.lq.dtype == torch.uint8
    for step in range(6):
        batch = make_batch(data, step, 2, 32, seed=1)
        assert not set(batch.ids_lq) & set(batch.ids_hq)
    seen = {i for s in (0, 1) for i in make_batch(data, s, 2, 32, seed=1).ids_lq}
    assert len(seen) == 4  # one epoch visits every degraded image once
    t = crop_targets(torch.tensor([[0.0, 0, 10, 10], [30, 30, 40, 40], [5, 5, 9, 9]]),
                     torch.tensor([1, 2, 3]), torch.ones(3), x0=4, y0=4, w=32, h=32)  # fmt: skip
    assert t["classes"].tolist() == [1, 2, 3]
    assert t["boxes"][0].tolist() == [0, 0, 6, 6] and t["boxes"][1].tolist() == [26, 26, 32, 32]
    t = crop_targets(torch.tensor([[0.0, 0, 40, 40]]), torch.tensor([1]), torch.ones(1), 35, 35, 32, 32)
    assert len(t["boxes"]) == 0  # 5 x 5 of 40 x 40 visible: under 10 % of its area


def test_lr_schedules():
    assert lr_factor(7, 10, "constant", 3, 0.0) == 1.0
    assert lr_factor(0, 10, "cosine", 3, 0.0) == 1.0 and lr_factor(10, 10, "cosine", 3, 0.1) == pytest.approx(
        0.1
    )
    # warm restarts: periods 3, 6, 12 -> restarts at steps 3 and 9
    f = [lr_factor(s, 100, "cosine_restarts", 3, 0.0) for s in range(12)]
    assert f[0] == f[3] == f[9] == 1.0 and f[2] < f[1] < 1.0 and f[8] < f[4]


def _one_step_grads(base, **speed):
    from vat.train.graph import TrainGraph, lambda_generator, targets_to, to_float

    data = _data(base)
    s = Speed(**speed).resolve(torch.device("cpu"))
    model = build_translator(PARAMS, item_seed(COMMON.seed, "train-init"), s, torch.device("cpu"))
    s.prepare_translator(model)
    det = lively_detector(nc=5, imgsz=64)
    graph = TrainGraph(model, det, PARAMS.loss_config(), s)
    b = make_batch(data, 0, 2, 32, COMMON.seed)
    dev = torch.device("cpu")
    lq, r, hq = (to_float(x, dev, s.channels_last) for x in (b.lq, b.restored, b.hq))
    out = graph(lq, r, hq, targets_to(b.targets_lq, dev), targets_to(b.targets_hq, dev),
                lambda_generator(COMMON.seed, 0, dev))  # fmt: skip
    out["total"].backward()
    return float(out["total"].detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_speed_options_do_not_change_results_beyond_bf16_rounding(base):
    loss, grads = _one_step_grads(base, bf16=False, channels_last=False)
    for speed, rtol in (
        ({"checkpoint": True}, 1e-6),
        ({"checkpoint": True, "checkpoint_detector": True}, 1e-6),
        ({"fold_batchnorm": True}, 1e-5),
        ({"one_detector_pass": True}, 1e-5),
        ({"channels_last": True}, 1e-4),
        ({"bf16": True}, 5e-2),
    ):
        l2, g2 = _one_step_grads(base, **{"bf16": False, "channels_last": False} | speed)
        assert l2 == pytest.approx(loss, rel=rtol), speed
        num = sum(float((g2[k] - grads[k]).norm()) ** 2 for k in grads) ** 0.5
        den = sum(float(grads[k].norm()) ** 2 for k in grads) ** 0.5
        assert num <= max(rtol, 1e-6) * 10 * den, (speed, num / den)


def test_checkpointed_translator_runs_in_chunks_of_the_batch_and_peaks_lower(base):
    """With the blocks checkpointed, the loss's batched T_A call (I_F, I_HQ, I_mix: 3B images)
    runs in chunks of B, so the backward recomputes one chunk's block at a time."""
    from vat.bench.train import TensorMemory
    from vat.models.translator import create_translator
    from vat.train.graph import TrainGraph, lambda_generator, targets_to, to_float

    b = make_batch(_data(base), 0, 2, 32, COMMON.seed)
    dev = torch.device("cpu")
    det = lively_detector(nc=5, imgsz=64)
    rows = {}
    for chunk in (False, None):  # None: on, as the blocks are checkpointed
        model = create_translator("vat-w8", seed=0, checkpoint=True)
        sizes = []
        model.t_a.register_forward_pre_hook(lambda _m, inp, sizes=sizes: sizes.append(inp[0].shape[0]))
        graph = TrainGraph(model, det, PARAMS.loss_config(), Speed().resolve("cpu"), chunk_translator=chunk)
        lq, r, hq = (to_float(x, dev) for x in (b.lq, b.restored, b.hq))
        with TensorMemory() as mem:
            out = graph(lq, r, hq, targets_to(b.targets_lq, dev), targets_to(b.targets_hq, dev),
                        lambda_generator(COMMON.seed, 0, dev))  # fmt: skip
            out["total"].backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        rows[chunk] = (float(out["total"].detach()), grads, max(sizes), mem.peak)
    (loss, grads, largest, peak), (loss_c, grads_c, largest_c, peak_c) = rows[False], rows[None]
    assert largest > 2 and largest_c == 2  # batch 2: the batched call had more, chunked ones 2 at most
    assert loss_c == pytest.approx(loss, rel=1e-6)
    assert float((grads_c - grads).norm()) <= 1e-5 * float(grads.norm())
    assert peak_c < peak


def test_compiled_translator_and_detector_give_the_same_step(base):
    """``--compile --compile-detector`` (with D's BatchNorms folded, as on a GPU): the same loss and
    gradients as eager. Inductor compiles the translator's blocks and D's layers on this CPU
    (about 3 minutes the first time; its cache makes later runs quick)."""
    from torch._dynamo.utils import counters

    speed = {"bf16": False, "channels_last": False, "fold_batchnorm": True}
    loss, grads = _one_step_grads(base, **speed)
    graphs = counters["stats"]["unique_graphs"]
    l2, g2 = _one_step_grads(base, **speed, compile=True, compile_detector=True)
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo did capture graphs
    assert l2 == pytest.approx(loss, rel=1e-4)
    num = sum(float((g2[k] - grads[k]).norm()) ** 2 for k in grads) ** 0.5
    den = sum(float(grads[k].norm()) ** 2 for k in grads) ** 0.5
    assert num <= 1e-4 * den


def test_params_are_validated():
    with pytest.raises(ValueError, match="batch"):
        replace(PARAMS, batch=0)
    with pytest.raises(ValueError, match="crop"):
        replace(PARAMS, crop=4)


def test_bad_inputs_are_named(base, tmp_path):
    from vat.errors import DataError

    with pytest.raises(DataError, match="images.parquet: missing; run `vat pseudolabel`"):
        train.run(COMMON, PARAMS, Layout(tmp_path, tmp_path / "r"), device="cpu")
    with pytest.raises(DataError, match="fewer than train.batch=64"):
        _run(base, "big", params=replace(PARAMS, batch=64))


# -- the ablate stage: a row is train with its params changed -------------------------------------


def _params_file(tmp_path, rows):
    import yaml

    from stages.tools import profile

    p = tmp_path / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    data = yaml.safe_load(p.read_text())
    data["common"]["seed"] = COMMON.seed
    data["train"] |= {k: v for k, v in vars(PARAMS).items() if k in data["train"]}
    data["ablate"] = rows
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_ablation_row_is_train_with_its_switches(base, tmp_path):
    from stages import ablate

    p = _params_file(tmp_path, {"no_cycle": {"use_cycle": False, "mixup": "none", "epochs": 1}})
    L = at(base).moved("ablate", tmp_path / "abl", tmp_path / "rep", tmp_path / "res")
    m = ablate.run("no_cycle", p, L, device="cpu")
    assert m["row"] == "no_cycle" and m["changes"] == {"use_cycle": False, "mixup": "none", "epochs": 1}
    assert m["label"] == "w/o L_cyc (L_mle only)" and m["steps"] == 2
    assert m["params_total"] == m["params_inference"]  # no T_B is built without L_cyc
    same = replace(PARAMS, use_cycle=False, mixup="none", epochs=1)
    _run(base, "no_cycle_by_hand", params=same)
    assert _same(_weights(tmp_path / "abl/no_cycle/last.pt"), _weights(base / "no_cycle_by_hand/last.pt"))
    assert (tmp_path / "rep/no_cycle/metrics.json").is_file()


def test_ablation_rows_are_validated(tmp_path):
    from vat.config import read_yaml
    from vat.errors import ParamsError
    from vat.train.config import ablation_row

    p = _params_file(tmp_path, {"bad": {"use_cycel": False}, "typo": {"mixup": "some"}, "ok": {}})
    data = read_yaml(p)

    def row_params(row):
        return ablation_row(data["ablate"], row, data["train"], str(p))

    with pytest.raises(ParamsError, match=r"ablate\.bad\.use_cycel: not a train param"):
        row_params("bad")
    with pytest.raises(ParamsError, match=r"ablate\.typo over train\.mixup"):
        row_params("typo")
    with pytest.raises(ParamsError, match=r"ablate\.nope: no such row \(rows: bad, typo, ok\)"):
        row_params("nope")
    params, changes = row_params("ok")
    assert changes == {} and params == replace(PARAMS)  # an empty row is train itself


def test_default_ablation_rows_are_table4s():
    from vat.config import profile_params
    from vat.eval.paper import TABLE4

    rows = profile_params("default", ROOT / "profiles")["ablate"]
    assert set(rows) == set(TABLE4) | {"w8", "online"} and rows["w8"] == {"translator": "vat-release-w8"}
    assert rows["online"] == {"labels": "online"}  # the released code's online pseudo-labels, beside cached
    assert rows["no_mle"]["use_mle"] is False and rows["plain_mixup"] == {"mixup": "plain"}
    paper = profile_params("paper", ROOT / "profiles")["ablate"]
    assert set(TABLE4) < set(paper) and paper["w48"] == {"translator": "vat-w48"}
    assert paper["w8"] == {"translator": "vat-w8"}  # the paper's width study keeps one depth


# -- the unpaired stage: CycleGAN-style, no pseudo-labels -------------------------------------------


def _unpaired(base, name, pl=None, **kw):
    from stages import unpaired

    params = unpaired.UnpairedParams(epochs=None, lr=2e-4, critic_width=4, critic_layers=2, cycle_weight=10.0,
                                     adv_weight=1.0, identity_weight=0.5, pool=3)  # fmt: skip
    L = at(base).moved("unpaired", base / name, base / f"{name}.reports", base / f"{name}.resume")
    if pl is not None:
        L = L.moved("pseudolabel", pl, base / "reports/pseudolabel")
    return unpaired.run(COMMON, replace(PARAMS, **kw), params, L, device="cpu")


def test_unpaired_baseline_trains_the_same_translator_without_pseudo_labels(base, tmp_path):
    import shutil

    import pandas as pd

    m = _unpaired(base, "cyc")
    model, meta = load_translator(base / "cyc/translator.pt")
    assert meta["objective"] == "cyclegan" and m["steps"] == 4 and len(m["val"]) == 2
    assert set(m["final_loss"]) == {"total", "cycle", "adv", "identity", "critic"}
    assert m["params_critics"] > 0 and (base / "cyc.reports/samples.png").is_file()
    init = build_translator(PARAMS, item_seed(COMMON.seed, "train-init"), Speed(), torch.device("cpu"))
    assert m["params_total"] == sum(p.numel() for p in init.parameters())  # VaT's translator, same size
    assert m["params_inference"] == sum(p.numel() for p in model.parameters())
    assert not _same(_weights(base / "cyc/last.pt"), {k: v for k, v in init.state_dict().items()
                                                          if not k.startswith("t_b.")})  # fmt: skip
    # the boxes of the pseudo-label table are never read: scrambled boxes, same weights
    pl = tmp_path / "pl"
    shutil.copytree(at(base).pseudolabels, pl)
    boxes = pd.read_parquet(pl / "boxes.parquet")
    for c in ("x1", "y1"):
        boxes[c] = 1.0
    for c in ("x2", "y2"):
        boxes[c] = 7.0
    boxes.to_parquet(pl / "boxes.parquet")
    _unpaired(base, "cyc2", pl=pl)
    assert _same(_weights(base / "cyc/last.pt"), _weights(base / "cyc2/last.pt"))
    assert _same(_weights(base / "cyc/translator.pt"), _weights(base / "cyc2/translator.pt"))


def test_unpaired_losses():
    from vat.models.translator import create_translator
    from vat.train.unpaired import HistoryPool, PatchCritic, critic_loss, generator_loss

    critic = PatchCritic(width=4, layers=3)
    assert critic(torch.rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)  # one score per overlapping patch
    model = create_translator("vat-w4", with_t_b=True, identity_init=True, seed=0)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    g = generator_loss(model, critic, critic, x, y, cycle_weight=10, adv_weight=0, identity_weight=1)
    assert float(g["cycle"]) < 1e-6 and float(g["identity"]) < 1e-6  # identity maps: no cycle error
    g = generator_loss(model, critic, critic, x, y, cycle_weight=10, adv_weight=1, identity_weight=0)
    assert float(g["total"]) == pytest.approx(float(g["adv"]))
    g["total"].backward()
    assert all(p.grad is not None for p in model.t_a.parameters())
    assert all(p.grad is not None for p in critic.parameters())  # the caller freezes the critics
    # the critic's loss is 0 exactly when it scores real 1 and fake 0
    perfect = lambda z: torch.full((z.shape[0], 1, 2, 2), float(z.mean() > 0.5))  # noqa: E731
    assert float(critic_loss(perfect, torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))) == 0.0
    assert float(critic_loss(perfect, torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8))) == 1.0
    pool = HistoryPool(2, torch.Generator().manual_seed(0))
    first = pool(torch.zeros(2, 3, 4, 4))
    assert torch.equal(first, torch.zeros(2, 3, 4, 4)) and len(pool.images) == 2
    shown = torch.cat([pool(torch.ones(1, 3, 4, 4)) for _ in range(20)])
    assert 0 < int((shown.flatten(1).mean(1) == 0).sum()) < 20  # older fakes come back, not always


# -- classification (the paper's Task 2) ------------------------------------------------------


@pytest.fixture(scope="module")
def cls_base(tmp_path_factory):
    """Object crops -> low light -> identity R -> restore, a small CNN D (2 epochs), soft pseudo-labels."""
    from stages import train_detector
    from stages.tools import profile

    base = tmp_path_factory.mktemp("train_cls")
    p = base / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    common = replace(COMMON, task="classify")
    L = at(base)
    pp = load_section(prepare.PrepareParams, "prepare", p)
    pp = replace(pp, embedded=replace(pp.embedded, n_train=16, n_val=4, n_test=4, crop_size=32))
    prepare.run(common, pp, L)
    dp = replace(load_section(degrade.DegradeParams, "degrade", p), method="lowlight")
    degrade.run(common, dp, L)
    tp = replace(load_section(train_restorer.TrainRestorerParams, "train_restorer", p), arch="identity")
    train_restorer.run(common, tp, L, device="cpu")
    restore.run(common, load_section(restore.RestoreParams, "restore", p), L, device="cpu")
    dtp = replace(load_section(train_detector.TrainDetectorParams, "train_detector", p), model="small_cnn",
                  epochs=2, imgsz=32)  # fmt: skip
    train_detector.run(common, dtp, L, device="cpu")
    pl = replace(load_section(pseudolabel.PseudolabelParams, "pseudolabel", p), k=3)
    pseudolabel.run(common, pl, L, device="cpu")
    return base


CLS_PARAMS = replace(PARAMS, crop=None, batch=4, epochs=2)


def _run_cls(base, name, params=CLS_PARAMS, pseudolabels=None):
    L = trained_at(base, name)
    if pseudolabels is not None:
        L = L.moved("pseudolabel", pseudolabels, base / "reports/pseudolabel")
    return train.run(replace(COMMON, task="classify"), params, L, device="cpu")


def test_classification_trains_on_soft_labels_and_selects_on_val_accuracy(cls_base):
    from vat.train.data import load_classification_data

    m = cls_base / "prepare/manifest.parquet", cls_base / "degrade/manifest.parquet"
    data = load_classification_data(
        at(cls_base).pseudolabels, m[0], m[1], cls_base / "restore/manifest.parquet"
    )
    assert len(data.degraded) == 8 and len(data.clean) == 8
    d = data.degraded[0]
    assert d.probs.shape == (5,) and abs(float(d.probs.sum()) - 1) < 1e-4 and d.boxes.shape == (0, 4)
    b = make_batch(data, 0, 4, None, 0)
    assert set(b.targets_lq[0]) == {"probs", "weight"} and b.lq.shape == (4, 3, 32, 32)

    out = _run_cls(cls_base, "c")
    assert out["steps"] == 4 and [v["epoch"] for v in out["val"]] == [1, 2]
    assert all(0 <= v["val_accuracy"] <= 1 and "val_map50" not in v for v in out["val"])
    assert out["last_val_accuracy"] == out["val"][-1]["val_accuracy"] and out["final_loss"]["mle"] > 0
    best = max(out["val"], key=lambda v: v["val_accuracy"])
    _, meta = load_translator(cls_base / "c/translator.pt")
    assert meta["selected"] == "val" and meta["epoch"] == best["epoch"]
    assert meta["val_accuracy"] == best["val_accuracy"]
    assert (cls_base / "c.reports/samples.png").is_file()
    assert (cls_base / "c.reports/live/plots/metrics/val/accuracy.tsv").is_file()


def test_evaluate_scores_a_classification_translator(cls_base):
    """evaluate's translator row for classification: accuracy and AUC of D on T_A(I_F); the ROC plot."""
    from vat.eval.evaluation import load_vision_model, translated_classifications, translation_triples
    from vat.eval.scoring import EvaluateParams, evaluate

    if not (cls_base / "c/translator.pt").is_file():
        _run_cls(cls_base, "c")
    clean, deg, rest = (cls_base / f"{k}/manifest.parquet" for k in ("prepare", "degrade", "restore"))
    inputs = {"Vanilla D(I_LQ)": deg, "Baseline D(R(I_LQ)), R=identity": rest,
              "VaT D(T_A(I_F)), val-selected": (cls_base / "c/translator.pt", rest)}  # fmt: skip
    params = EvaluateParams(split="test", interpolation="voc_all_point", niqe_patch=None)
    result = evaluate(replace(COMMON, task="classify"), params, inputs, at(cls_base), cls_base / "ev",
                      device="cpu")  # fmt: skip
    row = result["methods"]["VaT D(T_A(I_F)), val-selected"]
    truth = {r.image_id: r for r in read_manifest(clean).split("test")}
    d = load_vision_model("classify", at(cls_base).models, COMMON.classes)
    probs, labels = translated_classifications(d, load_translator(cls_base / "c/translator.pt")[0],
                                               translation_triples(truth, deg, rest, "test"))  # fmt: skip
    assert row["accuracy"] == round(float((probs.argmax(1) == labels).mean()), 4) and row["epoch"] >= 1
    assert set(row["auc"]) == set(COMMON.classes) and "_roc" not in row
    assert "| VaT D(T_A(I_F)), val-selected |" in (cls_base / "ev/table.md").read_text()
    assert (cls_base / "ev/roc.png").stat().st_size > 10_000  # three panels of curves


def test_classification_learns_from_kept_labels_only(cls_base, tmp_path):
    """Permuting the kept labels' probabilities changes the weights; changing a filtered one does not."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from vat.labels.pseudolabels import LABEL_SCHEMA

    p = replace(CLS_PARAMS, epochs=1, select="last")
    _run_cls(cls_base, "ref", p)
    rows = pq.read_table(at(cls_base).pseudolabels / "labels.parquet").to_pylist()

    def variant(name, change):
        d = tmp_path / name
        shutil.copytree(at(cls_base).pseudolabels, d)
        pq.write_table(pa.Table.from_pylist([change(dict(r)) for r in rows], schema=LABEL_SCHEMA),
                       d / "labels.parquet")  # fmt: skip
        _run_cls(cls_base, name, p, pseudolabels=d)
        return _weights(cls_base / f"{name}/translator.pt")

    ref = _weights(cls_base / "ref/translator.pt")
    kept = [r for r in rows if r["domain"] == "degraded" and r["kept"] and r["weight"] > 0]
    assert kept
    first = ("degraded", kept[0]["image_id"])
    shifted = variant("shifted", lambda r: r | {"probs": r["probs"][1:] + r["probs"][:1]}
                      if (r["domain"], r["image_id"]) == first else r)  # fmt: skip
    assert not _same(ref, shifted)
    # weight 0: the same rows, with their label moved, and not kept
    off = {"weight": 0.0, "kept": False}
    zeroed = variant("zeroed", lambda r: r | off if r["domain"] == "degraded" else r)
    moved = variant("moved", lambda r: r | off | {"probs": r["probs"][::-1]}
                    if r["domain"] == "degraded" else r)  # fmt: skip
    assert _same(zeroed, moved) and not _same(ref, zeroed)


def test_real_sets_without_clean_pairs_are_scored_beside_the_synthetic_one(base, tmp_path):
    """The real stage: an embedded set in depth fog and a VOC folder of degraded photographs, each
    restored by R and scored for Vanilla, Baseline and VaT by mAP, with no PSNR (no clean pairs)."""
    import json

    import yaml
    from PIL import Image
    from test_readers import voc_dataset

    from stages import real
    from stages.tools import profile

    if not (base / "a/translator.pt").is_file():
        _run(base, "a")
    # a VOC folder of three degraded images with their true boxes: a "real" set in the reader's format
    low = read_manifest(base / "degrade/manifest.parquet").split("test") + read_manifest(
        base / "degrade/manifest.parquet"
    ).split("val")
    entries = {
        r.image_id: (Image.open(r.path).convert("RGB"),
                     [(COMMON.classes[b.cls], round(b.x1) + 1, round(b.y1) + 1, round(b.x2), round(b.y2))
                      for b in r.boxes if b.x2 - b.x1 > 2 and b.y2 - b.y1 > 2])
        for r in low[:3]
    }  # fmt: skip
    voc_dataset(tmp_path / "voc", entries)
    p = tmp_path / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    data = yaml.safe_load(p.read_text())
    data["common"]["seed"] = COMMON.seed
    data["prepare"]["embedded"] |= {"width": 64, "height": 48, "n_test": 4}
    data["real"]["photos"] = {"source": "voc", "root": str(tmp_path / "voc"), "annotations": None,
                              "split": "all", "degrade": None}  # fmt: skip
    p.write_text(yaml.safe_dump(data))
    L = (
        at(base)
        .moved("real", tmp_path / "out", tmp_path / "rep")
        .moved("train", base / "a", base / "a.reports")
    )
    m = real.run(p, L.moved("unpaired", tmp_path / "none", tmp_path / "none"), device="cpu")
    assert set(m) == {"fog", "photos"} and m["fog"]["images"] == 4 and m["photos"]["images"] == 3
    assert m["photos"]["boxes"] == sum(len(e[1]) for e in entries.values())
    for name in m:
        ev = json.loads((tmp_path / f"rep/{name}/metrics.json").read_text())
        assert set(ev["methods"]) == {"Vanilla D(I_LQ)", "Baseline D(R(I_LQ)), R=identity",
                                      "VaT D(T_A(I_F)), val-selected", "VaT, last epoch"}  # fmt: skip
        vat_row = ev["methods"]["VaT D(T_A(I_F)), val-selected"]
        assert "psnr" not in vat_row and 0 <= vat_row["gate_mean"] <= 1 and 0 <= vat_row["map50"] <= 1
        assert (tmp_path / f"rep/{name}/grid.png").is_file()
    # the identity R: the baseline sees exactly the degraded images
    ev = json.loads((tmp_path / "rep/photos/metrics.json").read_text())["methods"]
    assert ev["Vanilla D(I_LQ)"]["map50"] == ev["Baseline D(R(I_LQ)), R=identity"]["map50"]
    # the fog set is new scenes, darkened by depth: none of them is an image of the main run
    fog = read_manifest(tmp_path / "out/fog/degrade/manifest.parquet")
    assert all(r.split == "test" and "fog/degrade" in r.path for r in fog.records)


def test_real_sets_are_checked():
    from stages.real import RealSet

    with pytest.raises(ValueError, match="source embedded needs degrade"):
        RealSet(source="embedded", root=None, annotations=None, split="test", degrade=None)
    with pytest.raises(ValueError, match="source voc needs root"):
        RealSet(source="voc", root=None, annotations=None, split="all", degrade=None)
    with pytest.raises(ValueError, match="and degrade: null"):
        RealSet(source="voc", root="x", annotations=None, split="all", degrade="haze")


def test_gate_has_its_own_learning_rate():
    from vat.models.translator import create_translator
    from vat.train.results import optimizer_groups

    model = create_translator("vat-w4", seed=0)
    n_gate = len(list(model.gate.parameters()))
    one = optimizer_groups(model, 1e-3, 1.0)
    assert len(one) == 1 and len(one[0]["params"]) == len(list(model.parameters()))
    rest, gate = optimizer_groups(model, 1e-3, 20.0)
    assert len(gate["params"]) == n_gate and gate["lr"] == pytest.approx(2e-2)
    assert len(rest["params"]) + n_gate == len(list(model.parameters())) and rest["lr"] == 1e-3
    # one AdamW step with equal gradients moves G's parameters 20x as far as T_A's
    opt = torch.optim.AdamW([rest, gate], lr=1e-3, weight_decay=0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    step = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    assert step["gate.to_weight.bias"] == pytest.approx(2e-2, rel=1e-3)
    assert step["t_a.output.weight"] == pytest.approx(1e-3, rel=1e-3)


def test_sample_pictures_name_the_method_that_made_them():
    from vat.train.loop import VatObjective
    from vat.train.unpaired import CycleGANObjective

    assert VatObjective.title == "VaT" and CycleGANObjective.title == "Unpaired"


def test_evaluate_scores_the_same_weights_once(base, monkeypatch):
    """Two rows whose files hold the same weights (one epoch: the last = the val-selected) are
    scored once and get the same numbers, each with its own file and epoch; other weights are
    scored on their own."""
    import vat.eval.scoring as scoring
    from vat.models.translator import create_translator, save_translator

    a, b = (create_translator("vat-release", seed=s, with_t_b=False) for s in (0, 1))
    files = [base / "same_1.pt", base / "same_2.pt", base / "other.pt"]
    save_translator(a, files[0], {"epoch": 1, "selected": "val"})
    save_translator(a, files[1], {"epoch": 2, "selected": "last"})
    save_translator(b, files[2], {"epoch": 1})
    rest = at(base).restored
    calls = []
    real = scoring._score_translator
    monkeypatch.setattr(scoring, "_score_translator", lambda ctx, spec: calls.append(spec) or real(ctx, spec))
    params = scoring.EvaluateParams(split="test", interpolation="voc_all_point", niqe_patch=None)
    rows = scoring.evaluate(COMMON, params, {f.stem: (f, rest) for f in files}, at(base), base / "ev_same",
                            device="cpu")["methods"]  # fmt: skip
    assert [c[0] for c in calls] == [files[0], files[2]]
    drop = ("translator", "epoch")
    assert {k: v for k, v in rows["same_1"].items() if k not in drop} == {
        k: v for k, v in rows["same_2"].items() if k not in drop
    }
    assert (rows["same_1"]["epoch"], rows["same_2"]["epoch"]) == (1, 2)
    assert rows["same_2"]["translator"] == str(files[1])


# -- online pseudo-labels (train.labels: online) ---------------------------------------------------


def _online(base):
    from vat.labels.online import REFERENCE, OnlineLabels
    from vat.models.detectors import load_detector

    det = load_detector(at(base).models / "detector.pt")
    return OnlineLabels(det, at(base).pseudolabels / REFERENCE, torch.device("cpu")), det


def test_online_labels_add_d_s_kept_new_boxes_on_the_translation(base):
    """The cached boxes stay first and unchanged; D's boxes on T_A(I_F) join them when NUQ keeps
    them (weight in the rule's range) and no cached box of their class covers them; fed back
    as the cached labels, the same translation adds nothing."""
    from torchvision.ops import box_iou

    from vat.train.data import make_batch

    online, det = _online(base)
    p = online.params
    batch = make_batch(_data(base), 0, 4, 64, seed=0)
    model = build_translator(PARAMS, 0, Speed().resolve("cpu"), torch.device("cpu"))
    lq, r = (x.float().div(255) for x in (batch.lq, batch.restored))
    nothing = {
        "boxes": torch.zeros(0, 4),
        "classes": torch.zeros(0, dtype=torch.long),
        "weights": torch.zeros(0),
    }
    empty = [nothing] * 4
    alone = online(model, lq, r, empty)
    assert sum(len(t["boxes"]) for t in alone) > 0  # the lively D finds something to add
    for t in alone:
        assert ((t["weights"] >= p.weight_range[0] - 1e-6) & (t["weights"] <= p.weight_range[1] + 1e-6)).all()
    cached = batch.targets_lq
    out = online(model, lq, r, cached)
    for c, o, a in zip(cached, out, alone, strict=True):
        m = len(c["boxes"])
        assert torch.equal(o["boxes"][:m], c["boxes"]) and torch.equal(o["weights"][:m], c["weights"])
        new, new_cls = o["boxes"][m:], o["classes"][m:]
        if len(new) and m:
            covered = (box_iou(new, c["boxes"]) >= p.merge_iou) & (new_cls[:, None] == c["classes"][None])
            assert not covered.any()
        assert len(new) <= len(a["boxes"])  # only boxes D found alone can be added
    again = online(model, lq, r, alone)
    assert [len(t["boxes"]) for t in again] == [len(t["boxes"]) for t in alone]
    assert online.metrics()["online_labels"]["crops"] == 12


def test_online_training_runs_and_reports_what_it_added(base, monkeypatch):
    """Online labels: the boxes added each step reach the loss (the step sees the cached boxes
    plus the added ones), and the run reports how many."""
    from vat.train.graph import TrainGraph

    seen = []
    real = TrainGraph.forward

    def spy(self, lq, restored, hq, targets_lq, *rest):
        seen.append(sum(len(t["boxes"]) for t in targets_lq))
        return real(self, lq, restored, hq, targets_lq, *rest)

    monkeypatch.setattr(TrainGraph, "forward", spy)
    m = _run(base, "online", replace(PARAMS, labels="online"))
    online, seen[:] = list(seen), []
    cached = _run(base, "cached")
    assert "online_labels" not in cached and len(seen) == len(online) == m["steps"]
    added = m["online_labels"]["added"]
    assert m["online_labels"]["crops"] == m["steps"] * PARAMS.batch and added > 0
    assert sum(online) - sum(seen) == added and all(a >= b for a, b in zip(online, seen, strict=True))


def test_online_labels_need_the_stage_s_reference_set(base, tmp_path):
    from vat.errors import DataError
    from vat.labels.online import OnlineLabels

    _, det = _online(base)
    with pytest.raises(DataError, match="reference.npz: missing"):
        OnlineLabels(det, tmp_path / "reference.npz", torch.device("cpu"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz: not a pseudo-label reference set"):
        OnlineLabels(det, tmp_path / "bad.npz", torch.device("cpu"))
    import numpy as np

    with np.load(at(base).pseudolabels / "reference.npz") as z:  # the set of another D: other widths
        np.savez(tmp_path / "other.npz", **{k: z[k] for k in z.files} | {"features": z["features"][:, :3]})
    with pytest.raises(DataError, match="other.npz: features of width .* from another D"):
        OnlineLabels(det, tmp_path / "other.npz", torch.device("cpu"))
