"""The house rules that keep the code easy to walk (STYLE.md), checked on every module.

- No stage imports another stage: a composite stage runs others through stages/_compose.py,
  and what two stages share is a library function under vat/.
- The library prints nothing (stages/_ui.py is the one terminal).
- No module over MAX_MODULE lines; no function over MAX_LINES lines or MAX_PARAMS
  parameters unless a comment on the line above its ``def`` (or decorators), or at the end of
  the ``def`` line, says why. A
  typer command's options are its CLI, so commands are exempt from the parameter count.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE, MAX_LINES, MAX_PARAMS = 450, 60, 8
STAGES = sorted(
    p.stem for p in (ROOT / "stages").glob("*.py") if not p.stem.startswith("_") and p.stem != "cli"
)


def _modules(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_no_stage_imports_another_stage():
    stage_modules = {f"stages.{s}" for s in STAGES}
    for path in _modules("stages", "vat"):
        if path.name in ("cli.py", "__main__.py"):
            continue  # the entry point registers every command
        bad = sorted(_imported(path) & (stage_modules - {f"stages.{path.stem}"}))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: share a library function instead"


def test_the_library_prints_nothing():
    for path in _modules("vat"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(
                    f"{path.relative_to(ROOT)}:{node.lineno} prints; report through the stage"
                )
        assert "rich" not in {n.split(".")[0] for n in _imported(path)}, path


def _reason(lines: list[str], node: ast.FunctionDef) -> bool:
    """A comment on the line above the def (or its decorators), or at the end of the def line."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return (first >= 2 and lines[first - 2].strip().startswith("#")) or "#" in lines[node.lineno - 1]


def test_modules_and_functions_stay_readable():
    problems = []
    for path in _modules("vat", "stages"):
        text = path.read_text()
        lines = text.splitlines()
        where = path.relative_to(ROOT)
        if len(lines) > MAX_MODULE:
            problems.append(f"{where}: {len(lines)} lines (split it)")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs] + [x for x in (a.vararg, a.kwarg) if x]
            params = [p for p in params if p.arg not in ("self", "cls")]
            length = node.end_lineno - node.lineno + 1
            command = node.name.endswith("command")
            long = length > MAX_LINES or (len(params) > MAX_PARAMS and not command)
            if long and not _reason(lines, node):
                problems.append(
                    f"{where}:{node.lineno} {node.name}: {length} lines, {len(params)} parameters"
                )
    assert not problems, "write why on the line above, or split:\n" + "\n".join(problems)
