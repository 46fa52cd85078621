"""docs/algorithm.md and the code stay true to each other: every section the project cites
exists, and every piece of code the document names (`model.losses.kl_loss`,
`ZSCRGAN.critic_update`, `run/kept_kernels.py`) exists where it says. Read with `ast`."""
import ast
import glob
import os
import re

from conftest import ROOT

DOC = os.path.join(ROOT, "docs", "algorithm.md")
PACKAGE = os.path.join(ROOT, "zscrgan")
FLOOR_NAMES = ("config", "errors", "files", "cli", "data", "model", "results", "run", "toolkit", "sweeps", "tools")


def sections():
    """The section numbers of docs/algorithm.md's headings: {"1", "2", "2.1", ...}."""
    with open(DOC) as f:
        return {m.group(1) for m in re.finditer(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", f.read(), re.M)}


def cited():
    """{(file, section)} of every `docs/algorithm.md §...` in the project's code, tests, configs
    and README (ranges like §2-§7 or §2-3 give both ends)."""
    files = [p for pattern in ("zscrgan/**/*.py", "tests/*.py", "benchmarks/*.py", "datasets/*.py", "run_exp.py",
                               "configs/**/*.yml", "README.md", "docs/*.md")
             for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)]
    found = set()
    for path in files:
        with open(path) as f:
            for line in f:
                if "algorithm.md" not in line and not path.endswith("algorithm.md"):
                    continue
                for group in re.findall(r"§\s?(\d+(?:\.\d+)?)(?:\s?-\s?§?(\d+(?:\.\d+)?))?", line):
                    found |= {(os.path.relpath(path, ROOT), s) for s in group if s}
    return found


def definitions(path):
    """{top-level name: set of its attribute names (for classes: methods, class and self attributes)}."""
    tree = ast.parse(open(path).read())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names[node.name] = set()
            if isinstance(node, ast.ClassDef):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names[node.name].add(sub.name)
                    elif isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store):
                        names[node.name].add(sub.attr)
                    elif isinstance(sub, (ast.Assign, ast.AnnAssign)):
                        for t in getattr(sub, "targets", [getattr(sub, "target", None)]):
                            if isinstance(t, ast.Name):
                                names[node.name].add(t.id)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in getattr(node, "targets", [getattr(node, "target", None)]):
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names[n.id] = set()
    return names


def resolve(reference):
    """None when the code the document names exists, else why not."""
    if "/" in reference:  # a path under zscrgan/
        return None if os.path.exists(os.path.join(PACKAGE, reference)) else "no such file or folder"
    parts = reference.split(".")
    if parts[0] in FLOOR_NAMES:
        for cut in range(len(parts), 0, -1):
            path = os.path.join(PACKAGE, *parts[:cut]) + ".py"
            if os.path.isfile(path):
                rest = parts[cut:]
                break
        else:
            return "no such module"
        defs = definitions(path)
        if rest and rest[0] not in defs:
            return f"{rest[0]} is not defined in {os.path.relpath(path, ROOT)}"
        if len(rest) > 1 and rest[1] not in defs[rest[0]]:
            return f"{rest[0]} has no {rest[1]}"
        return None
    owner, attribute = parts[0], parts[1]  # Class.attribute, the class anywhere in the package
    for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True):
        defs = definitions(path)
        if owner in defs and attribute in defs[owner]:
            return None
    return f"no class {owner} with {attribute}"


def references():
    """The backticked code names of docs/algorithm.md: dotted names of the package's floors,
    Class.attribute names, and paths of the package."""
    with open(DOC) as f:
        text = f.read()
    found = set()
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.rstrip("()")
        if re.fullmatch(rf"(?:{'|'.join(FLOOR_NAMES)})(?:\.\w+)+", token) and not token.endswith((".yml", ".pkl", ".py")):
            found.add(token)
        elif re.fullmatch(r"[A-Z]\w*\.\w+", token):
            found.add(token)
        elif re.fullmatch(rf"(?:{'|'.join(FLOOR_NAMES[4:])})/[\w/]*(?:\.py)?", token):
            found.add(token)
    return found


def test_every_cited_section_exists():
    have = sections()
    missing = sorted(f"{f}: §{s}" for f, s in cited() if s not in have)
    assert cited() and not missing, missing


def test_every_name_the_document_gives_the_code_exists():
    refs = references()
    assert len(refs) > 40  # the document names the code throughout
    wrong = {r: why for r in sorted(refs) for why in [resolve(r)] if why}
    assert not wrong, wrong
