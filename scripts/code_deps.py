"""The code deps of every DVC stage are exactly its import closure: the stage script and every module of
cxrldm/ and stages/ that it imports, directly or through each other (an empty package __init__.py is
not code and is left out). Editing a module then re-runs exactly the stages that use it.

    python scripts/code_deps.py           # lists the stages whose dvc.yaml code deps differ; exit 1 if any
    python scripts/code_deps.py --write   # rewrites those deps in dvc.yaml (other deps stay as they are)
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cxrldm", "stages")
CODE_DEP = re.compile(r"^(\s+)- ((?:cxrldm|stages)/\S+\.py)\s*$")


def module_file(name: str, root: Path = ROOT) -> str | None:
    """cxrldm.data.labels -> cxrldm/data/labels.py (or the package's __init__.py), if it is in the repository."""
    for candidate in (name.replace(".", "/") + ".py", name.replace(".", "/") + "/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def imported_modules(path: str, root: Path = ROOT) -> set[str]:
    """Dotted names a file imports (module names, and module.name for `from module import name`),
    wherever the import statement stands (functions too: a lazy import still runs)."""
    tree = ast.parse((root / path).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            folder = Path(path).parent.parts
            package = ".".join(folder[: len(folder) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (package, node.module) if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_closure(script: str, root: Path = ROOT) -> set[str]:
    """The repository files `script` runs: itself, the modules it imports, theirs, and the __init__.py of
    every package on the way (when it holds code)."""
    seen, todo = {script}, [script]
    while todo:
        for name in imported_modules(todo.pop(), root):
            parts = name.split(".")
            if parts[0] not in PACKAGES:
                continue
            for depth in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:depth]), root)
                if file and file not in seen and (not file.endswith("__init__.py") or (root / file).stat().st_size):
                    seen.add(file)
                    todo.append(file)
    return seen


def stage_script(cmd: str) -> str:
    return "stages/" + cmd.split("-m stages.")[1].split()[0] + ".py"


def differences(dvc_file: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> dict[str, tuple[set, set]]:
    """{stage: (listed but not imported, imported but not listed)} for stages whose code deps are off."""
    out = {}
    for name, spec in yaml.safe_load(dvc_file.read_text())["stages"].items():
        listed = {dep for dep in spec.get("deps", []) if CODE_DEP.match(f"  - {dep}")}
        closure = import_closure(stage_script(spec["cmd"]), root)
        if listed != closure:
            out[name] = (listed - closure, closure - listed)
    return out


def write(dvc_file: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> None:
    """Replace each stage's code deps by its import closure, in place of the first one listed."""
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    lines, out, stage = dvc_file.read_text().splitlines(keepends=True), [], None
    for line in lines:
        header = re.match(r"^  (\w+):\s*$", line)
        if header:
            stage, inserted = header[1], False
        match = CODE_DEP.match(line)
        if match and stage in stages:
            if not inserted:
                script = stage_script(stages[stage]["cmd"])
                closure = sorted(import_closure(script, root) - {script})
                out += [f"{match[1]}- {dep}\n" for dep in [script, *closure]]
                inserted = True
            continue
        out.append(line)
    dvc_file.write_text("".join(out))


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
    off = differences()
    for stage, (extra, missing) in off.items():
        print(f"{stage}: listed but not imported {sorted(extra)}; imported but not listed {sorted(missing)}")
    sys.exit(1 if off else 0)
