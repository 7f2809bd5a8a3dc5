"""The shape of the engine, checked by walking every import with `ast` (docs/ARCHITECTURE.md draws it).

Floors, lowest first: the floor of small helpers every stage may use; the stages in the order data flows
(sources → linking → dataset → training → chat); the pipeline that chains them; the wings that build on the
stages (collect, uebersicht, demo); the operations around them (ops); the command line (cli). A module may import
its own floor and the floors below it; an import that points upward is a back-edge and fails this test. Imports
inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"

# The floor each top-level name under engine/ stands on. A new module must be placed here, or the test fails.
FLOORS: dict[str, int] = {
    # 0: small helpers with no stage knowledge
    "errors": 0, "clock": 0, "files": 0, "text": 0, "progress": 0, "records": 0, "formats": 0, "processes": 0,
    "migrations": 0, "store": 0, "config": 0, "settings": 0, "team": 0, "executor": 0, "__init__": 0,
    "models_home": 0,
    # 1-5: the stages, in the order data flows
    "sources": 1, "knowledge": 1, "extract": 1,
    "linking": 2,
    "dataset": 3,
    "training": 4,
    "chat": 5,
    # 6: the flow that chains the stages
    "pipeline": 6,
    # 7: wings built on the stages
    "collect": 7, "uebersicht": 7, "demo": 7,
    # 8: operations around everything: background tasks, scheduler, stats, API
    "ops": 8,
    # 9: the command line
    "cli": 9, "__main__": 9,
}

# Pairs that are on allowed floors but still must not meet.
FORBIDDEN = [
    ("engine.chat", "engine.training.launcher", "chat reads formats and OpenBLAS from the floor, not the launcher"),
    ("engine.config", "engine.store", "the config is a schema; it knows no workspace"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported engine module) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("engine")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("engine"):
                continue
            # `from engine.x import y` may name the submodule engine.x.y
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                sub = ENGINE.parent.joinpath(*candidate.split("."))
                found.append((node.lineno, candidate if sub.with_suffix(".py").is_file() or sub.is_dir() else module))
    return found


def _floor(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in FLOORS:
        raise AssertionError(f"{module} stands on no floor: add engine/{top} to FLOORS in tests/test_architecture.py "
                             "and to docs/ARCHITECTURE.md")
    return FLOORS[top]


def _engine_files() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


def test_every_module_stands_on_a_floor():
    for path in _engine_files():
        _floor(_module_name(path))


def test_no_import_points_to_a_higher_floor():
    back_edges = []
    for path in _engine_files():
        here = _module_name(path)
        for line, target in _imports(path):
            if _floor(target) > _floor(here):
                back_edges.append(f"{path.relative_to(ENGINE.parent)}:{line} ({here}, floor {_floor(here)}) imports "
                                  f"{target} (floor {_floor(target)})")
    assert not back_edges, "back-edges:\n" + "\n".join(back_edges)


def test_stages_never_reach_wings_operations_or_the_cli():
    stages = ("engine.sources", "engine.linking", "engine.dataset", "engine.training")
    banned = ("engine.collect", "engine.ops", "engine.cli", "engine.pipeline", "engine.demo", "engine.uebersicht")
    bad = []
    for path in _engine_files():
        here = _module_name(path)
        if here.startswith(stages):
            bad += [f"{here}:{line} imports {target}" for line, target in _imports(path) if target.startswith(banned)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("importer", "imported", "why"), FORBIDDEN)
def test_forbidden_pairs(importer, imported, why):
    bad = []
    for path in _engine_files():
        here = _module_name(path)
        if here == importer or here.startswith(importer + "."):
            bad += [f"{here}:{line}" for line, target in _imports(path)
                    if target == imported or target.startswith(imported + ".")]
    assert not bad, f"{why}: " + ", ".join(bad)


def test_the_walk_sees_a_back_edge(tmp_path, monkeypatch):
    """The checker itself must catch a lazy, relative back-edge, or the tests above could never fail."""
    fake = tmp_path / "engine"
    (fake / "sources").mkdir(parents=True)
    (fake / "ops").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "sources" / "__init__.py").write_text("")
    (fake / "ops" / "__init__.py").write_text("")
    (fake / "ops" / "tasks.py").write_text("X = 1\n")
    (fake / "sources" / "reader.py").write_text("def f():\n    from ..ops import tasks\n    return tasks.X\n")
    monkeypatch.setattr(__import__(__name__), "ENGINE", fake, raising=False)
    globals_ = globals()
    monkeypatch.setitem(globals_, "ENGINE", fake)
    with pytest.raises(AssertionError, match=r"engine\.ops\.tasks \(floor 8\)"):
        test_no_import_points_to_a_higher_floor()


# Rules decided in one place: (kind, name) -> the one module that may define it.
ONE_DEFINITION = {
    ("name", "TIERS"): "engine.records",
    ("name", "SPLITS"): "engine.records",
    ("name", "DEFAULT_MIN_CONFIDENCE"): "engine.config",
    ("name", "LINK_MODES"): "engine.config",
    ("function", "training_readiness"): "engine.ops.stats",
    ("function", "format_problems"): "engine.formats",
    ("function", "findings_action"): "engine.dataset.review",
    ("function", "write_mlx_splits"): "engine.dataset.mlx",
    ("function", "split_by_hash"): "engine.dataset.split",
    ("function", "passes"): "engine.linking.threshold",
    ("function", "write_atomic"): "engine.files",
    ("function", "utc_now"): "engine.clock",
    ("function", "_now"): None,  # nowhere: the clock module's utc_now / now_iso instead
}


def _definitions(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append(("function", node.name))
        elif isinstance(node, ast.Assign):
            found += [("name", target.id) for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.append(("name", node.target.id))
    return found


def test_each_rule_is_defined_once_in_its_place():
    where: dict[tuple[str, str], list[str]] = {key: [] for key in ONE_DEFINITION}
    for path in _engine_files():
        for key in _definitions(path):
            if key in where:
                where[key].append(_module_name(path))
    wrong = {f"{kind} {name}": places for (kind, name), places in where.items()
             if places != ([ONE_DEFINITION[(kind, name)]] if ONE_DEFINITION[(kind, name)] else [])}
    assert not wrong, f"defined elsewhere or more than once: {wrong}"
