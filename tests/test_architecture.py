"""The rules of docs/architecture.md: the package's top level, the code map naming every module
where it lives, commands never importing each other, the library never importing a command,
nothing importing JAX's private modules; every module and function short enough to read."""

import ast
import pathlib
import re

import pytest

from tests import helpers

ROOT = pathlib.Path(helpers.ROOT)
PACKAGE = ROOT / "sphm_jax"
CODE_MAP = ROOT / "docs" / "architecture.md"
# The commands, `python -m sphm_jax.<name>`: a module, or a package whose modules are its own.
COMMANDS = {
    "main",
    "evaluate",
    "predict",
    "benchmark",
    "ablation",
    "roundtrip",
    "convert",
    "export",
    "synthetic",
    "detect",
    "stability",
}
# The paper's pure pieces at the top, then the library's subpackages by role.
PAPER = {"heatmaps", "geometry", "augment", "losses", "metrics", "layouts", "inference", "models"}
LIBRARY = PAPER | {"_validate", "data", "training", "toolkit"}
# The library's layers, in the order data flows: each imports only its own layer and those below.
LAYERS = {**dict.fromkeys(PAPER | {"_validate"}, 0), "data": 1, "training": 2, "toolkit": 3}


def _modules():
    """(dotted name under sphm_jax, path) of every module, the configs link left out."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if "configs" not in parts:
            yield ".".join(parts), path


def _imported(path) -> set[str]:
    """The top-level sphm_jax names a module imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sphm_jax"):
            rest = node.module.split(".")[1:]
            names |= {rest[0]} if rest else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("sphm_jax.")}
    return names


def test_the_top_level_is_the_paper_the_library_by_role_and_the_commands():
    entries = {p.stem for p in PACKAGE.iterdir() if p.name != "__pycache__"} - {"__init__"}
    assert entries == LIBRARY | COMMANDS
    assert len(entries) + 1 <= 24  # with __init__.py
    for command in COMMANDS:
        path = PACKAGE / f"{command}.py"
        main = path if path.exists() else PACKAGE / command / "__main__.py"
        assert 'if __name__ == "__main__":' in main.read_text(), command


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda v: str(v))
def test_imports_follow_the_layers(module, path):
    top = module.split(".")[0]
    command = top if top in COMMANDS else None
    others = _imported(path) & COMMANDS - {command}
    if command:
        assert not others, f"the command {module} imports the command(s) {sorted(others)}"
        private = re.findall(r"\btrain\._\w+", path.read_text())
        assert not private, f"{module} uses train's private {sorted(set(private))}"
    else:
        assert not others, f"the library module {module} imports the command(s) {sorted(others)}"


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda v: str(v))
def test_the_library_flows_one_way(module, path):
    top = module.split(".")[0]
    if top in LAYERS:
        above = sorted(n for n in _imported(path) if LAYERS.get(n, len(LAYERS)) > LAYERS[top])
        assert not above, f"{module} (layer {top}) imports {above}, a layer above it"


def test_the_code_map_names_every_module_where_it_lives():
    named = set(re.findall(r"`((?:[\w.]+/)*\w+\.py)`", CODE_MAP.read_text()))
    modules = {str(path.relative_to(PACKAGE)) for _, path in _modules()}
    missing = sorted(m for m in modules - named if not m.endswith("__init__.py"))
    assert not missing, f"docs/architecture.md does not name {missing}"
    stale = sorted(n for n in named if not (PACKAGE / n).exists() and not (ROOT / n).exists())
    assert not stale, f"docs/architecture.md names files that do not exist: {stale}"


def _sources():
    for folder in (PACKAGE, ROOT / "tfds_builders"):
        for path in sorted(folder.rglob("*.py")):
            if "configs" not in path.relative_to(ROOT).parts:
                yield path


def test_modules_and_functions_are_short():
    long = []
    for path in _sources():
        text = path.read_text()
        lines = text.count("\n")
        if lines > 400:
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {size} lines")
    assert not long, "over 400 lines a module or 60 a function:\n" + "\n".join(long)


def test_nothing_imports_jax_private_modules():
    private = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            private += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("jax._src")]
    assert not private, "\n".join(private)


def test_the_layer_test_sees_an_import_of_a_command(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from sphm_jax import evaluate, geometry\nfrom sphm_jax.predict import x\n")
    assert _imported(bad) == {"evaluate", "geometry", "predict"}
