"""Faults tried on purpose: a fit killed mid-epoch and resumed from its checkpoint,
corrupted or unwritable checkpoint files. Every test that starts a process bounds it
with a timeout, so that a hang fails."""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Checkpoint
from skorch.history import History

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier

WORKER = Path(__file__).with_name("checkpoint_worker.py")
REPO = WORKER.parent.parent
FAST = dict(max_epochs=2, lr=0.1, batch_size=32, verbose=0, random_state=0)


def run_worker(mode, folder, timeout=180):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(WORKER.parent),
                                          os.environ.get("PYTHONPATH", "")])}
    try:
        return subprocess.run([sys.executable, str(WORKER), mode, str(folder)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"checkpoint_worker {mode} did not finish within {timeout} s")


def test_a_fit_killed_mid_epoch_resumes_from_its_checkpoint(tmp_path):
    whole = run_worker("whole", tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run_worker("killed", tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # Two completed epochs were checkpointed; epoch 3 died after 2 batches.
    assert len(History.from_file(str(tmp_path / "history.json"))) == 2
    assert not list(tmp_path.glob(".*.tmp"))
    resumed = run_worker("resume", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = pickle.loads((tmp_path / "whole.pkl").read_bytes())
    got = pickle.loads((tmp_path / "resume.pkl").read_bytes())
    # Bit for bit: the resumed epochs draw what the uninterrupted ones drew.
    assert got["weights"].shape == (4, 150)
    np.testing.assert_array_equal(got["weights"], expected["weights"])
    np.testing.assert_array_equal(got["train_loss"], expected["train_loss"])
    np.testing.assert_array_equal(got["clean_loss"], expected["clean_loss"])
    for name, value in expected["params"].items():
        np.testing.assert_array_equal(got["params"][name], value, err_msg=name)


def checkpointed(folder):
    X, y = make_blobs_data(150)
    checkpoint = Checkpoint(monitor=None, dirname=str(folder))
    L2RWClassifier(MLP, X[:30], y[:30], callbacks=[checkpoint], **FAST).fit(X[30:], y[30:])
    return checkpoint, X, y


def state(net):
    return (net.sample_weights_.copy(), [dict(row) for row in net.history],
            {k: v.clone() for k, v in net.module_.state_dict().items()},
            pickle.dumps(net.optimizer_.state_dict()))


class TestCorruptedCheckpoint:
    @pytest.mark.parametrize("name", ["params.pt", "optimizer.pt", "history.json",
                                      "history.json.weights.npz"])
    @pytest.mark.parametrize("damage", ["truncate", "overwrite"])
    def test_a_damaged_file_is_named_and_the_estimator_kept(self, tmp_path, name,
                                                             damage):
        checkpoint, X, y = checkpointed(tmp_path)
        path = tmp_path / name
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2] if damage == "truncate"
                         else bytes(len(data)))
        net = L2RWClassifier(MLP, X[:30], y[:30], **dict(FAST, random_state=1))
        net.fit(X[30:], y[30:])
        before = state(net)
        with pytest.raises(ValueError, match="truncated or corrupted") as info:
            net.load_params(checkpoint=checkpoint)
        assert str(path) in str(info.value)
        after = state(net)
        np.testing.assert_array_equal(after[0], before[0])
        assert after[1] == before[1]
        for key, value in before[2].items():
            assert torch.equal(after[2][key], value), key
        assert after[3] == before[3]

    def test_a_good_checkpoint_restores_the_weight_record(self, tmp_path):
        checkpoint, X, y = checkpointed(tmp_path)
        fitted = L2RWClassifier(MLP, X[:30], y[:30], **FAST).fit(X[30:], y[30:])
        net = L2RWClassifier(MLP, X[:30], y[:30], **dict(FAST, random_state=1))
        net.fit(X[30:], y[30:])
        net.load_params(checkpoint=checkpoint)
        np.testing.assert_array_equal(net.sample_weights_, fitted.sample_weights_)
        assert len(net.history) == 2


def can_write(folder):
    probe = Path(folder) / f".probe-{os.getpid()}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def unwritable(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if can_write(folder):  # root writes anywhere but in sysfs
            if not os.path.isdir("/sys") or can_write("/sys"):
                pytest.skip("no folder this user cannot write")
            yield Path("/sys")
        else:
            yield folder
    finally:
        folder.chmod(0o700)


class TestUnwritableCheckpoint:
    def test_the_fit_stops_before_training_naming_the_folder(self, unwritable):
        X, y = make_blobs_data(150)
        net = L2RWClassifier(MLP, X[:30], y[:30],
                             callbacks=[Checkpoint(monitor=None, dirname=str(unwritable))],
                             **FAST)
        with pytest.raises(PermissionError, match="checkpoint folder") as info:
            net.fit(X[30:], y[30:])
        assert str(unwritable) in str(info.value)
        assert not net.initialized_ and not hasattr(net, "module_")

    def test_a_failed_save_leaves_the_last_good_files(self, tmp_path, monkeypatch):
        checkpoint, X, y = checkpointed(tmp_path)
        good = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        net = L2RWClassifier(MLP, X[:30], y[:30], **dict(FAST, random_state=1))
        net.fit(X[30:], y[30:])

        def disk_full(self, f):
            with open(f, "w") as out:
                out.write('[{"epoch": 1, "trai')  # cut short, as by a full disk
            raise OSError(28, "No space left on device", f)

        monkeypatch.setattr(History, "to_file", disk_full)
        with pytest.raises(OSError, match="cannot write the checkpoint files in") as info:
            net.save_params(f_params=str(tmp_path / "params.pt"),
                            f_optimizer=str(tmp_path / "optimizer.pt"),
                            f_history=str(tmp_path / "history.json"))
        assert str(tmp_path) in str(info.value)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == good
        monkeypatch.undo()
        loaded = L2RWClassifier(MLP, X[:30], y[:30], **FAST).fit(X[30:], y[30:])
        loaded.load_params(checkpoint=checkpoint)  # still loads
