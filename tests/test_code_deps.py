"""Every stage's code deps in dvc.yaml are exactly its import closure (scripts/code_deps.py), so editing a
module re-runs exactly the stages that import it: a module listed but not imported would re-run a stage
for nothing, one imported but not listed would leave the stage wrongly cached."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import code_deps  # noqa: E402


def test_dvc_yaml_code_deps_equal_each_stage_import_closure():
    off = code_deps.differences()
    assert not off, "run `python scripts/code_deps.py --write`: " + "; ".join(
        f"{stage}: extra {sorted(extra)}, missing {sorted(missing)}" for stage, (extra, missing) in off.items()
    )


@pytest.fixture
def project(tmp_path):
    """stages/one.py imports cxrldm.a (which imports cxrldm.sub.b lazily, inside a function); cxrldm.c is
    imported by nobody; cxrldm/sub/__init__.py is empty."""
    files = {
        "stages/__init__.py": "",
        "stages/one.py": "from cxrldm import a\nimport numpy\n",
        "cxrldm/__init__.py": "",
        "cxrldm/a.py": "def f():\n    from cxrldm.sub.b import g\n    return g\n",
        "cxrldm/sub/__init__.py": "",
        "cxrldm/sub/b.py": "from . import c_sibling\n",
        "cxrldm/sub/c_sibling.py": "",
        "cxrldm/c.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def dvc_yaml(project: Path, deps: list[str]) -> Path:
    lines = ["stages:", "  one:", "    cmd: python -m stages.one", "    deps:"]
    lines += [f"      - {dep}" for dep in deps] + ["      - data/input.csv", "    outs:", "      - data/out"]
    path = project / "dvc.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


CLOSURE = ["stages/one.py", "cxrldm/a.py", "cxrldm/sub/b.py", "cxrldm/sub/c_sibling.py"]


def test_the_closure_follows_lazy_and_relative_imports(project):
    assert code_deps.import_closure("stages/one.py", project) == set(CLOSURE)


@pytest.mark.parametrize(
    "deps,extra,missing",
    [
        (CLOSURE, set(), set()),
        (CLOSURE + ["cxrldm/c.py"], {"cxrldm/c.py"}, set()),
        (CLOSURE[:-1], set(), {"cxrldm/sub/c_sibling.py"}),
    ],
)
def test_a_listed_module_not_imported_or_an_imported_one_not_listed_is_found(project, deps, extra, missing):
    off = code_deps.differences(dvc_yaml(project, deps), project)
    assert off.get("one", (set(), set())) == (extra, missing)


def test_write_puts_the_closure_in_place_and_keeps_other_deps(project):
    path = dvc_yaml(project, ["stages/one.py", "cxrldm/c.py"])
    code_deps.write(path, project)
    assert not code_deps.differences(path, project)
    assert "      - data/input.csv\n" in path.read_text()
