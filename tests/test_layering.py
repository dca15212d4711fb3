"""The package's layers point one way: core <- data_gen <- cli, and nothing imports a top-level data_gen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a source file imports (at any depth, lazy and typing-only imports included; `from X
    import y` as X and X.y)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_cli(path: Path) -> bool:
    """The command line: clap/cli/ and `python -m clap`'s clap/__main__.py."""
    return "cli" in path.relative_to(REPO / "clap").parts or path == REPO / "clap" / "__main__.py"


@pytest.mark.parametrize("path", [p for p in sources("clap") if not is_cli(p)], ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_data_gen_or_the_cli(path):
    bad = {m for m in imported_modules(path) if _under(m, "clap.data_gen") or _under(m, "clap.cli")}
    assert not bad, f"{path} imports {bad}: the core must not depend on the producers or the CLI"


@pytest.mark.parametrize("path", sources("data_gen"), ids=lambda p: str(p.relative_to(REPO)))
def test_data_gen_never_imports_the_cli(path):
    bad = {m for m in imported_modules(path) if _under(m, "clap.cli")}
    assert not bad, f"{path} imports {bad}"


def test_nothing_imports_a_top_level_data_gen():
    files = [p for folder in ("clap", "data_gen", "tests", "benchmarks", "experiments") for p in sources(folder)]
    bad = [str(p.relative_to(REPO)) for p in files if any(_under(m, "data_gen") for m in imported_modules(p))]
    assert not bad, f"import clap.data_gen instead of data_gen in {bad}"


def test_every_package_folder_is_listed_for_the_wheel():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {str(p.parent.relative_to(REPO)).replace("/", ".") for p in (REPO / "clap").rglob("__init__.py")}
    folders |= {"clap." + str(p.parent.relative_to(REPO)).replace("/", ".")
                for p in (REPO / "data_gen").rglob("__init__.py")}
    assert set(config["packages"]) == folders


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts = ["clap", *parts] if parts[0] == "data_gen" else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (lazy imports included, `if TYPE_CHECKING:` blocks not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_imports_itself_through_others():
    """The import graph of the package has no cycles (one-way layers inside it too)."""
    modules = {_module_name(p): p for folder in ("clap", "data_gen") for p in sources(folder)}
    graph = {name: (_runtime_imports(path) & set(modules)) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for nxt in graph[name]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*trail, nxt])}"
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


EVALUATION_LAYERS = ("statistics", "inputs", "protocols", "output", "pipeline")


def _evaluation_layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[:2] != ["clap", "evaluation"] or len(parts) < 3:
        return None
    assert parts[2] in EVALUATION_LAYERS, f"{module}: every evaluation module lives in a layer folder"
    return EVALUATION_LAYERS.index(parts[2])


def upward_imports(path: Path, module: str) -> set[str]:
    """The evaluation modules of a later layer than `module`'s that the file imports."""
    own = _evaluation_layer(module)
    if own is None:  # clap/evaluation/__init__.py
        return set()
    return {m for m in imported_modules(path) if (layer := _evaluation_layer(m)) is not None and layer > own}


@pytest.mark.parametrize("path", sources("clap/evaluation"), ids=lambda p: str(p.relative_to(REPO)))
def test_evaluation_layers_import_downwards(path):
    """statistics <- inputs <- protocols <- output <- pipeline: a module imports its own layer or the ones before."""
    upward = upward_imports(path, _module_name(path))
    assert not upward, f"{path.relative_to(REPO)} imports from a later layer: {upward}"


def test_the_layering_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from clap.evaluation.pipeline import tasks\n")
    assert upward_imports(bad, "clap.evaluation.protocols.zeroshot") == {"clap.evaluation.pipeline",
                                                                         "clap.evaluation.pipeline.tasks"}
    assert not upward_imports(bad, "clap.evaluation.pipeline.evaluate")
