"""The code each DVC stage runs, from its imports; checks dvc.yaml's deps cover it.

Usage: python3 scripts/dvc_deps.py          # per stage: the files dvc.yaml does not list
       python3 scripts/dvc_deps.py --all    # per stage: every file of its import closure
       python3 scripts/dvc_deps.py --write  # rewrite each stage's code deps in dvc.yaml

A stage ``S`` runs ``stages/S.py`` and every module of this repository it imports,
transitively, wherever the import statement sits (a lazy import inside a function counts);
the parent packages' ``__init__.py`` run too. A composite stage (ablate, study, classify,
real) runs other stages again through ``stages/_compose.py``: their modules count as its
own, read from its ``RUNS`` tuple. The ``vat`` entry point (``stages/cli.py``,
``stages/__main__.py``) imports every command, so it is left out: which command runs is the
stage, not the entry point. tests/test_dvc.py fails when a stage's closure has a file that
no dep of the stage covers (a dep that is a folder covers what is under it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vat", "stages")
ENTRY_POINTS = {"stages/cli.py", "stages/__main__.py"}


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of module ``name`` in this repository (a module or a package), or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """Module names ``path`` imports, anywhere in it (submodules named in ``from x import y`` too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: from . import x, from .a import b
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*parts, mod] if mod else parts)
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _runs(path: Path) -> tuple[str, ...]:
    """A composite stage's ``RUNS``: the stages it runs again."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RUNS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return ()


def closure(stage: str, root: Path = ROOT) -> set[str]:
    """Every repository file stage ``stage`` runs (paths relative to ``root``)."""
    todo = [root / "stages" / f"{stage}.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names = _imports(path, root)
        if path.parent == root / "stages":
            names |= {f"stages.{r}" for r in _runs(path)}
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the parent packages run on import too
                f = module_file(".".join(parts[:i]), root)
                if f is not None:
                    todo.append(f)
    files = {str(p.relative_to(root)) for p in seen}
    return files - ENTRY_POINTS


def stage_deps(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, list[str]]:
    """Stage name (a foreach stage by its own name) -> the deps dvc.yaml lists for it."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    return {name: list((spec.get("do", spec)).get("deps", [])) for name, spec in stages.items()}


def uncovered(files: set[str], deps: list[str]) -> list[str]:
    """The files no dep covers (a dep covers itself and, as a folder, what is under it)."""
    deps = [d.rstrip("/") for d in deps]
    return sorted(f for f in files if not any(f == d or f.startswith(d + "/") for d in deps))


def compress(files: set[str], root: Path = ROOT) -> list[str]:
    """``files`` with each folder all of whose Python files are in ``files`` written as the folder."""
    out = set(files)
    folders = sorted({str(Path(f).parent) for f in files}, key=lambda d: d.count("/"))
    for d in folders:
        if d in ("stages", "vat") or any(d.startswith(o + "/") for o in out if not o.endswith(".py")):
            continue
        inside = {str(p.relative_to(root)) for p in (root / d).rglob("*.py")}
        if inside and inside <= files:
            out = {f for f in out if not f.startswith(d + "/")} | {d}
    return sorted(out)


def _is_code(dep: str, root: Path = ROOT) -> bool:
    """A dep on Python code of the repository (what :func:`closure` finds), not on its data: the
    YOLO yamls that ship with vat (``vat/models/yolo``) are listed by hand and kept."""
    path = root / dep
    if not dep.startswith(PACKAGES):
        return False
    return path.suffix == ".py" or (path.is_dir() and any(path.rglob("*.py")))


def write(dvc_yaml: Path = ROOT / "dvc.yaml") -> None:
    """Each stage's deps: its code (:func:`closure`, :func:`compress`), then its data deps as listed."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.width = 120
    rt.indent(mapping=2, sequence=4, offset=2)
    doc = rt.load(dvc_yaml.read_text())
    for name, spec in doc["stages"].items():
        body = spec["do"] if "do" in spec else spec
        data = [d for d in body.get("deps", []) if not _is_code(str(d))]
        body["deps"] = compress(closure(name)) + data
    with open(dvc_yaml, "w") as f:
        rt.dump(doc, f)


def main(argv: list[str]) -> int:
    if "--write" in argv:
        write()
        return 0
    bad = 0
    for name, deps in stage_deps().items():
        files = closure(name)
        shown = sorted(files) if "--all" in argv else uncovered(files, deps)
        if shown:
            bad += 0 if "--all" in argv else 1
            print(f"{name}:")
            for f in shown:
                print(f"  - {f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
