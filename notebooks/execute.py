"""Run the notebooks for real and store their outputs in place.

Usage (from the repository root, with the ``plot`` extra, cleanlab, nbclient,
nbformat and ipykernel installed and the data sets cached by
``python -m benchmarks.datasets fetch adult mnist``)::

    python notebooks/execute.py                      # all notebooks
    python notebooks/execute.py notebooks/02_*.ipynb  # some

Each notebook runs in a fresh kernel of this interpreter, from the ``notebooks/``
folder, without ``SK_L2RW_NOTEBOOK_SMOKE`` (the tests set it to run them on tiny
stand-ins instead). Torch uses one thread unless ``OMP_NUM_THREADS`` says otherwise,
which on a small shared machine is the faster choice for these models.
"""

import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def execute(path, timeout=1800):
    """Execute one notebook in place; return the seconds it took."""
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv=None):
    paths = (argv if argv is not None else sys.argv[1:]) or sorted(HERE.glob("*.ipynb"))
    os.environ.pop("SK_L2RW_NOTEBOOK_SMOKE", None)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # jupyter_client starts "python" kernels with this interpreter.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    for path in paths:
        seconds = execute(path)
        size = Path(path).stat().st_size / 1024
        print(f"{Path(path).name}: {seconds:.0f} s, {size:.0f} KB", flush=True)


if __name__ == "__main__":
    main()
