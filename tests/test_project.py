"""The project's own promises: public names exported, dependency lists in agreement."""

import tomllib
from pathlib import Path

import gotalk_lab

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_is_exported():
    for name in gotalk_lab.__all__:
        assert hasattr(gotalk_lab, name), name
    assert len(set(gotalk_lab.__all__)) == len(gotalk_lab.__all__)


def test_environment_yml_carries_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    text = (ROOT / "environment.yml").read_text()
    pip_lines = [line.strip()[2:].strip() for line in text.split("- pip:", 1)[1].splitlines() if line.strip().startswith("- ")]
    assert set(pip_lines) - {"-e ."} == declared, "environment.yml and pyproject.toml list different dependencies"
    assert "python>=3.10" in text and project["requires-python"] == ">=3.10"


def test_the_lab_layer_loads_on_first_use_only():
    import subprocess
    import sys

    script = "import sys, gotalk_lab as gl; assert 'ipywidgets' not in sys.modules; gl.show; gl.lab; gl.widgets.Timeline; print('ok')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_no_module_imports_itself_back():
    """No import cycle anywhere in the package, imports inside functions included."""
    import grimp

    graph = grimp.build_graph("gotalk_lab")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append(" -> ".join((module, *chain)))
    assert not cycles, cycles


def test_no_module_uses_another_modules_private_names():
    """``from .x import _name`` is how private names leak between modules: there is none."""
    import ast

    package = Path(gotalk_lab.__file__).parent
    leaks = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                names = [alias.name for alias in node.names if alias.name.startswith("_")]
                if names:
                    leaks.append(f"{path.relative_to(package)}:{node.lineno}: {', '.join(names)}")
    assert not leaks, leaks


NAMED_TUPLE_API = {"_replace", "_asdict", "_fields", "_make"}


def test_no_module_reaches_into_another_objects_private_attributes():
    """``thing._name`` outside the module that defines ``_name``: none (a seam is a public name)."""
    import re

    package = Path(gotalk_lab.__file__).parent
    reaches = []
    for path in sorted(package.rglob("*.py")):
        source = path.read_text()
        # What this module defines itself: its attributes, functions and module names.
        own = (
            set(re.findall(r"(?:self|cls)\.(_[a-z]\w*)\s*(?::[^=\n]*)?=", source))
            | set(re.findall(r"def (_[a-z]\w*)", source))
            | set(re.findall(r"^(_[a-z]\w*)\s*=", source, re.M))
        )
        for match in re.finditer(r"\b(?!self\b|cls\b)([A-Za-z_]\w*)\.(_[a-z]\w*)", source):
            # A named tuple's _replace/_asdict/_fields/_make are its public API.
            if match.group(2) not in own | NAMED_TUPLE_API:
                line = source.count("\n", 0, match.start()) + 1
                reaches.append(f"{path.relative_to(package)}:{line}: {match.group(0)}")
    assert not reaches, reaches
