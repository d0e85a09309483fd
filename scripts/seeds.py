"""Run the pipeline once per seed and write mean and spread of every score to reports/seeds/.

    python scripts/seeds.py                 # seeds 0 1 2 of the current params.yaml
    python scripts/seeds.py --seeds 0 1 2 3 --work .seeds
    python scripts/seeds.py --collect       # summarise the copies' reports again, running nothing

Each seed other than the workspace's runs `dvc repro` in its own copy of the workspace
(git's tracked and untracked-but-not-ignored files, under `--work`, git-ignored), with
`common.seed` set in the copy's params.yaml; the workspace's own seed reuses its reports
when `dvc status` says the pipeline is up to date, else runs in a copy too. Every random
draw of a run derives from `common.seed` (vat/seeding.py): data, R, D, translators. The
copies stay (their `repro.log` and reports; `--resume` runs on in them after a failure);
delete `--work` to free the space. Runs are
sequential: on a 2-core CPU each takes what `make repro` takes.

Writes reports/seeds/metrics.json (vat/eval/seeds.py: per set and method mean, sd and
per-seed values; the targets; `spread`, which the report reads as a run's resolution),
table.md and seeds.png. Commit them, then `dvc repro` reruns the report with them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vat.config import load_common  # noqa: E402
from vat.eval.seeds import collect, plot, summarise, table  # noqa: E402
from vat.io import write_json, write_text  # noqa: E402

SEED_LINE = re.compile(r"^(common:\n(?:(?:  .*|\s*)\n)*?  seed:\s*)(\d+)", re.M)


def workspace_seed(params: str) -> int:
    m = SEED_LINE.search(params)
    if not m:
        raise SystemExit("params.yaml: no common.seed line (`  seed: N` under `common:`)")
    return int(m.group(2))


def up_to_date(root: Path) -> bool:
    """`dvc status` lists nothing but `inputs`, which always runs (it looks at your files)."""
    out = subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        return False
    return all(v == ["always changed"] for v in json.loads(out.stdout or "{}").values())


def copy_workspace(root: Path, dest: Path) -> None:
    """The files git knows or would add (no data/, no DVC cache, no venv) into ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                           capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    if dest.exists():
        shutil.rmtree(dest)
    for f in filter(None, files):
        src = root / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    shutil.copytree(root / ".dvc", dest / ".dvc", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("cache", "tmp"))  # fmt: skip
    # DVC wants a git root, and DVCLive (the training logs) a commit in it
    git = ["git", "-c", "user.name=seeds", "-c", "user.email=seeds@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "copied by scripts/seeds.py"], cwd=dest, check=True)


def run_seed(root: Path, work: Path, seed: int, resume: bool = False) -> Path:
    """``dvc repro`` in a copy with ``common.seed = seed``; returns the copy's reports/.
    ``resume``: an existing copy is run on as it is (what it finished stays)."""
    dest = work / f"seed-{seed}"
    if not (resume and (dest / ".git").is_dir()):
        copy_workspace(root, dest)
        params = dest / "params.yaml"
        params.write_text(SEED_LINE.sub(lambda m: f"{m.group(1)}{seed}", params.read_text(), count=1))
    env = os.environ | {"PYTHONPATH": str(dest)}  # the copy's code, not the installed workspace's
    print(f"seeds: seed {seed}: dvc repro in {dest} (log: {dest / 'repro.log'})", flush=True)
    with open(dest / "repro.log", "a") as log:  # a resumed run adds to the log
        rc = subprocess.run(["dvc", "repro"], cwd=dest, env=env, stdout=log, stderr=subprocess.STDOUT)
    rc = rc.returncode
    if rc:
        raise SystemExit(f"seeds: seed {seed}: dvc repro failed (exit {rc}); see {dest / 'repro.log'}")
    return dest / "reports"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--work", type=Path, default=ROOT / ".seeds", help="folder for the copies")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "seeds")
    ap.add_argument("--resume", action="store_true", help="run on in existing copies instead of new ones")
    ap.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: summarise the copies' reports as they are",
    )
    args = ap.parse_args()
    if len(set(args.seeds)) < 2:
        raise SystemExit("seeds: give at least two different seeds")
    own = workspace_seed((ROOT / "params.yaml").read_text())
    runs = {}
    for seed in args.seeds:
        if args.collect:
            reports = args.work / f"seed-{seed}" / "reports"
            if not (reports / "evaluate").is_dir():
                if not (seed == own and up_to_date(ROOT)):
                    raise SystemExit(f"seeds: {reports}: no evaluation to collect; run without --collect")
                reports = ROOT / "reports"  # the workspace's own seed, as a run without --collect takes it
        elif seed == own and up_to_date(ROOT):
            print(f"seeds: seed {seed}: the workspace's run (dvc status: up to date)", flush=True)
            reports = ROOT / "reports"
        else:
            reports = run_seed(ROOT, args.work, seed, args.resume)
        runs[seed] = collect(reports)
    summary = summarise(runs, load_common(ROOT / "params.yaml").profile)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(summary, args.out / "metrics.json")
    write_text(table(summary), args.out / "table.md")
    plot(summary, args.out / "seeds.png")
    print(table(summary))
    print(f"seeds: -> {args.out}/ (metrics.json, table.md, seeds.png)")


if __name__ == "__main__":
    main()
