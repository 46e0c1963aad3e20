"""Sphinx configuration: API from the numpydoc docstrings, notebooks with their
stored outputs (never executed here), the changelog from CHANGES.md."""

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import sk_l2rw  # noqa: E402

project = "sk-l2rw"
author = "the sk-l2rw developers"
copyright = "2026, the sk-l2rw developers"
release = version = sk_l2rw.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# The notebooks live in notebooks/; a copy under examples/ is what Sphinx reads.
# Their stored outputs are shown as they are: building the docs trains nothing.
EXAMPLES = HERE / "examples"
EXAMPLES.mkdir(exist_ok=True)
for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copyfile(notebook, EXAMPLES / notebook.name)
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence"]

autodoc_default_options = {"member-order": "bysource"}
autosummary_generate = True
numpydoc_show_class_members = False  # skorch's inherited members are not ours
numpydoc_class_members_toctree = False

intersphinx_mapping = {}  # no network at build time: plain references only

html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "Learning to Reweight Examples for scikit-learn",
                      "fixed_sidebar": True}

# The notebooks' markdown cells use "##" section headings under their title cell;
# MyST reads each cell's headings on their own and reports the jump.
suppress_warnings = ["myst.header"]
