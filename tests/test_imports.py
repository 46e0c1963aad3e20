"""The house rules of ``benchmarks/`` and ``sk_l2rw/``, read from their source.

- ``benchmarks/`` stands on two levels: the common base (``benchmarks/common/`` and
  the shared modules in ``BASE``) and the studies. A study imports the base,
  ``sk_l2rw`` and third-party code, never another study; the base imports no study.
- No private name (``_name``) crosses a file: neither ``from module import _name`` nor
  ``module._name`` of a module of the two packages.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmarks", "sk_l2rw")
# Shared modules of benchmarks/ outside common/: the base, not studies.
BASE = {"benchmarks", "benchmarks.datasets", "benchmarks.environment", "benchmarks.models",
        "benchmarks.ports", "benchmarks.report"}
# Study -> studies it may still import, each with the reason (none left).
ALLOWED = {}
# Private names still crossing a file, each with the reason.
PRIVATE_ALLOWED = set()


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def is_base(name):
    return name in BASE or name == "benchmarks.common" or name.startswith("benchmarks.common.")


def is_study(name):
    return name.startswith("benchmarks.") and not is_base(name)


def private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports(name, path, known):
    """(imported module, names taken from it or None, line) of every import, and
    ``alias._attr`` uses of package modules as (module, attr, line)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found, aliases, attrs = [], {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                found.append((a.name, None, node.lineno))
                if a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in known:  # a module imported from its package
                    found.append((sub, None, node.lineno))
                    aliases[a.asname or a.name] = sub
                else:
                    found.append((base, a.name, node.lineno))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and private(node.attr)):
            attrs.append((aliases[node.value.id], node.attr, node.lineno))
    return found, attrs


def violations():
    known = modules()
    out = []
    for name, path in known.items():
        found, attrs = imports(name, path, known)
        where = f"{path.relative_to(ROOT)}"
        for target, taken, line in found:
            if target not in known or target == name:
                continue
            if (name.startswith("benchmarks") and is_study(target)
                    and target not in ALLOWED.get(name, {})):
                role = "study" if is_study(name) else "base module"
                out.append(f"{where}:{line}: {role} {name} imports study {target}")
            if taken is not None and private(taken) and (where, taken) not in PRIVATE_ALLOWED:
                out.append(f"{where}:{line}: imports private {taken} from {target}")
        for target, attr, line in attrs:
            if target in known and target != name:
                out.append(f"{where}:{line}: uses private {target}.{attr}")
    return out


def test_no_study_imports_another_and_no_private_name_crosses_a_file():
    assert violations() == []


def test_the_check_sees_the_packages():
    known = modules()
    assert "benchmarks.quality" in known and "sk_l2rw.net" in known
    assert is_study("benchmarks.quality") and not is_study("benchmarks.common.baselines")


def test_the_check_finds_what_it_forbids(tmp_path):
    known = modules()
    source = tmp_path / "study.py"
    source.write_text("from benchmarks.quality import _secret, main\n"
                      "from benchmarks import speed as s\n"
                      "def f():\n"
                      "    return s._hidden\n")
    found, attrs = imports("benchmarks.study", source, known)
    assert ("benchmarks.quality", "_secret", 1) in found
    assert ("benchmarks.speed", None, 2) in found
    assert attrs == [("benchmarks.speed", "_hidden", 4)]
    assert is_study("benchmarks.speed") and not private("__init__")
