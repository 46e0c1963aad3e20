"""benchmarks/ as a package: every study runs as ``python -m benchmarks.<study>``."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Shared pieces, not studies.
SHARED = {"common", "datasets", "environment", "models", "ports", "report"}

# In one process (each start imports torch): import every study the way
# ``python -m`` from the repository root does and print its --help.
HELP_SCRIPT = """
import contextlib, importlib, io, json, sys
helps = {}
for name in sys.argv[1:]:
    module = importlib.import_module("benchmarks." + name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            module.main(["--help"])
        except SystemExit as exit:
            helps[name] = (exit.code, out.getvalue())
print(json.dumps(helps))
"""


def studies():
    return sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "benchmarks")])
                  if m.name not in SHARED)


def test_every_study_is_listed_in_the_package_docstring():
    import benchmarks

    assert len(studies()) == 16
    for name in studies():
        assert f"``{name}``" in benchmarks.__doc__, name


def test_every_study_has_a_command_line_with_smoke():
    done = subprocess.run([sys.executable, "-c", HELP_SCRIPT, *studies()], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    helps = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(helps) == studies()
    for name, (code, text) in helps.items():
        assert code == 0 and "--smoke" in text, (name, text)
