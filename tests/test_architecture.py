"""The rules of docs/architecture.md: commands never import each other, the library never imports a
command, commands use train's public names only; every module and function short enough to read."""

import ast
import pathlib
import re

import pytest

from tests import helpers

ROOT = pathlib.Path(helpers.ROOT)
PACKAGE = ROOT / "sphm_jax"
# Top-level names of sphm_jax that are commands (a package's submodules count as the command).
COMMANDS = {
    "main",
    "evaluate",
    "predict",
    "benchmark",
    "ablation",
    "roundtrip",
    "convert",
    "export",
    "detect",
    "stability",
    "synthetic",
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "configs":  # the symlink to configs/
            continue
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


def _command(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in COMMANDS else None


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda v: str(v))
def test_imports_follow_the_layers(module, path):
    command = _command(module)
    others = _imported(path) & COMMANDS - {command}
    assert not others, f"{module} imports the command(s) {sorted(others)}"
    if command:
        private = re.findall(r"\btrain\._\w+", path.read_text())
        assert not private, f"{module} uses train's private {sorted(set(private))}"


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


def test_the_layer_test_sees_an_import_of_a_command(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from sphm_jax import evaluate, geometry\nfrom sphm_jax.predict import x\n")
    assert _imported(bad) == {"evaluate", "geometry", "predict"}


def test_nothing_imports_jax_private_modules():
    private = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            private += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("jax._src")]
    assert not private, "\n".join(private)
