"""The package's floors, read from every module's imports with `ast` (nothing is imported).

A module imports only modules of its own floor or of floors below (imports inside functions
count), never a tool another tool, never a private name of another module, and no import
makes a circle. Each package's `__init__` docstring says what it holds and must not know.
"""
import ast
import glob
import os
import textwrap

import pytest

from conftest import ROOT

# floor: the packages and modules on it, lowest first. run_exp.py, benchmarks/ and tests/ stand
# above every floor and may import any of them.
FLOORS = {
    0: ("zscrgan", "zscrgan.errors", "zscrgan.config", "zscrgan.files"),
    1: ("zscrgan.data",),
    2: ("zscrgan.model",),
    3: ("zscrgan.results",),
    4: ("zscrgan.run",),
    5: ("zscrgan.toolkit", "zscrgan.sweeps"),
    6: ("zscrgan.tools",),
    7: ("zscrgan.cli", "zscrgan.__main__"),
}
TOOLS = "zscrgan.tools"
# What a floor must not know, beyond the floors above it: the libraries it never imports.
NEVER = {
    "zscrgan.data": ("tensorflow", "ray"),
    "zscrgan.model": ("zscrgan.files", "ray", "argparse"),
    "zscrgan.results": ("ray", "argparse"),
    "zscrgan.run": ("ray", "argparse"),
}


def modules(root):
    """{dotted module name: its file} of the package under `root`."""
    found = {}
    for folder, _, files in os.walk(os.path.join(root, "zscrgan")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def owner(name, mods):
    """The longest module of `mods` that `name` is or lies in, or None (outside the package)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(module, path, mods):
    """[(imported module, the names taken from it, whether they are its attributes)] of one file."""
    tree = ast.parse(open(path).read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + [base] * bool(base))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in mods:
                    found.append((full, [], False))
                else:
                    found.append((base, [alias.name], True))
    return found


def floor_of(module):
    best = max((p for names in FLOORS.values() for p in names if module == p or module.startswith(p + ".")),
               key=len)
    return next(f for f, names in FLOORS.items() if best in names), best


def problems(root):
    """Every breach of the floors in the package under `root`, one sentence each."""
    mods = modules(root)
    graph, found = {m: set() for m in mods}, []
    for module, path in mods.items():
        floor, package = floor_of(module)
        for target, names, attributes in imports(module, path, mods):
            for lib in NEVER.get(package, ()):
                if target == lib or target.startswith(lib + "."):
                    found.append(f"{module} imports {target}, which {package} must not know")
            other = owner(target, mods)
            if other is None or other == module:
                continue
            if not module.startswith(other + "."):  # a package's own modules may import its __init__
                graph[module].add(other)
            other_floor, other_package = floor_of(other)
            if other_floor > floor:
                found.append(f"{module} (floor {floor}) imports {other} (floor {other_floor})")
            if package == TOOLS == other_package and module != TOOLS and other != TOOLS:
                found.append(f"the tool {module} imports the tool {other}")
            for name in names:
                if attributes and name.startswith("_") and not name.startswith("__"):
                    found.append(f"{module} takes the private name {name} of {other}")
    found += [f"an import circle: {' -> '.join(c)}" for c in circles(graph)]
    return found


def circles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_keeps_its_floors():
    assert problems(ROOT) == []


def test_every_module_is_on_a_floor_and_every_package_says_what_it_holds():
    for module, path in modules(ROOT).items():
        floor_of(module)  # raises for a module on no floor
        if path.endswith("__init__.py") and module != "zscrgan":
            doc = (ast.get_docstring(ast.parse(open(path).read())) or "").splitlines()
            assert len(doc) == 2 and doc[1].startswith("Knows nothing of "), module


def plant(tmp_path, files):
    """A package tree `zscrgan/...` under tmp_path with these {relative path: source} files."""
    for rel, source in files.items():
        path = tmp_path / "zscrgan" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    for folder in {p.parent for p in (tmp_path / "zscrgan").rglob("*.py")}:
        (folder / "__init__.py").touch()
    return str(tmp_path)


@pytest.mark.parametrize("files, words", [
    ({"model/em.py": "def f():\n    from zscrgan.run import loop\n", "run/loop.py": ""},
     "zscrgan.model.em (floor 2) imports zscrgan.run.loop (floor 4)"),
    ({"results/a.py": "from zscrgan.results import b\n", "results/b.py": "import zscrgan.results.a\n"},
     "an import circle: zscrgan.results.a -> zscrgan.results.b"),
    ({"tools/train.py": "", "tools/sweep.py": "from zscrgan.tools import train\n"},
     "the tool zscrgan.tools.sweep imports the tool zscrgan.tools.train"),
    ({"data/dataset.py": "_vectors = 1\n", "run/loop.py": "from zscrgan.data.dataset import _vectors\n"},
     "zscrgan.run.loop takes the private name _vectors of zscrgan.data.dataset"),
    ({"data/dataset.py": "import tensorflow as tf\n"},
     "zscrgan.data.dataset imports tensorflow, which zscrgan.data must not know"),
    ({"model/em.py": "from ..run.loop import run\n", "run/loop.py": ""},
     "zscrgan.model.em (floor 2) imports zscrgan.run.loop (floor 4)"),
])
def test_the_check_finds_what_is_planted(tmp_path, files, words):
    assert words in problems(plant(tmp_path, files))


def top_level_names(path):
    """The names a module defines or imports at its top level (what `from it import name` may take)."""
    names = set()
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in getattr(node, "targets", [getattr(node, "target", None)]):
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def unresolved(root):
    """Every `zscrgan` import in the package, its tests, benchmarks and scripts that names a
    module or a name that does not exist (a move that left a reader behind)."""
    mods, found = modules(root), []
    files = [p for pattern in ("zscrgan/**/*.py", "tests/*.py", "benchmarks/*.py", "datasets/*.py", "*.py")
             for p in glob.glob(os.path.join(root, pattern), recursive=True)]
    for path in files:
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                found += [f"{path}: import {a.name}" for a in node.names
                          if a.name.startswith("zscrgan") and a.name not in mods]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zscrgan" and not node.level:
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in mods:
                        continue
                    if node.module not in mods or alias.name not in top_level_names(mods[node.module]):
                        found.append(f"{os.path.relpath(path, root)}: from {node.module} import {alias.name}")
    return found


def test_every_import_of_the_package_names_what_exists():
    assert unresolved(ROOT) == []
