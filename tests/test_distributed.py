"""Data-parallel fits (sk_l2rw.distributed): 2 and 4 gloo processes on CPU against
one process on the same global batches.

Each launch starts ``tests/distributed_worker.py`` once per rank; the worker fits
every case in turn and pickles what each rank ended with. A launch that does not
finish within its timeout fails as a hang.
"""

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sk_l2rw.data import TensorBatches
from sk_l2rw.distributed import ShardedBatches, current_group, shard_bounds

WORKER = Path(__file__).with_name("distributed_worker.py")
REPO = WORKER.parent.parent

COMPUTATIONS = ["fit-ghost", "fit-jvp", "fit-reference"]
# fit-auto also prints and writes checkpoints; alarm makes the clean loss rise.
# dataset and dataset64 fit a torch TensorDataset (float32, float64); early-stop
# ends after 2 of 3 epochs (skorch's EarlyStopping raises KeyboardInterrupt).
FITS = ["fit-auto", *COMPUTATIONS, "clean-ghost", "regressor", "dataset", "dataset64",
        "early-stop", "alarm"]
FAILURES = ["bad-input", "fails", "nonfinite"]
# A user's callback raises on rank 1 alone (distributed_worker.CALLBACK_FAILURES).
CALLBACK_FAILURES = ["callback-epoch-end", "callback-batch-end", "callback-last-batch",
                     "callback-train-end"]


def launch(out, world, cases, timeout, killed=()):
    """Run ``cases`` on ``world`` ranks; {case: [report of rank 0, 1, ...]}.

    ``killed``: ranks expected to die by SIGKILL (no report from them)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    logs = [out / f"log{rank}" for rank in range(world)]
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(rank), str(world),
                               str(out / "rendezvous"), str(out), ",".join(cases)],
                              env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
             for rank, log in enumerate(logs)]
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        pytest.fail(f"{world} ranks did not finish {cases} within {timeout} s (a hang); "
                    f"rank 0 said:\n{logs[0].read_text()[-2000:]}")
    for rank, (proc, log) in enumerate(zip(procs, logs)):
        expected = -signal.SIGKILL if rank in killed else 0
        assert proc.returncode == expected, log.read_text()[-3000:]
    return {case: [pickle.loads((out / f"{case}-rank{rank}.pkl").read_bytes())
                   for rank in range(world) if rank not in killed] for case in cases}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process (no torch.distributed), 2 ranks and 4 ranks."""
    root = tmp_path_factory.mktemp("distributed")
    return {1: launch(root / "world1", 1, FITS, timeout=240),
            2: launch(root / "world2", 2, FITS, timeout=240),
            4: launch(root / "world4", 4, ["fit-auto", *COMPUTATIONS], timeout=240),
            "root": root}


@pytest.fixture(scope="module")
def failures(tmp_path_factory):
    """2 ranks where rank 1 alone meets a bad input, a failing step, a NaN loss."""
    return launch(tmp_path_factory.mktemp("failures"), 2, FAILURES, timeout=90)


@pytest.fixture(scope="module")
def callback_failures(tmp_path_factory):
    """2 ranks where a callback raises on rank 1 alone, outside the steps. Without
    the agreement rank 0 waits in its next collective for good: the timeout fails
    the hang."""
    return launch(tmp_path_factory.mktemp("callbacks"), 2, CALLBACK_FAILURES, timeout=90)


def assert_same_fit(expected, got):
    # Float rounding only: the all-reduce sums the gradient in another order.
    for key in ("weights", "train_loss", "clean_loss"):
        np.testing.assert_allclose(np.asarray(got[key], dtype=float),
                                   np.asarray(expected[key], dtype=float),
                                   rtol=1e-5, atol=1e-6, err_msg=key)
    assert got["params"].keys() == expected["params"].keys()
    for name, value in expected["params"].items():
        np.testing.assert_allclose(got["params"][name], value, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert got["batch_sizes"] == expected["batch_sizes"]
    assert got["meta_gradient"] == expected["meta_gradient"]


class TestExactness:
    # alarm's rate makes the run diverge, which amplifies rounding: not compared.
    @pytest.mark.parametrize("case", [c for c in FITS if c != "alarm"])
    def test_two_ranks_equal_one_process(self, runs, case):
        for report in runs[2][case]:
            assert "error" not in report, report.get("error")
            assert_same_fit(runs[1][case][0], report)

    @pytest.mark.parametrize("case", ["fit-auto", *COMPUTATIONS])
    def test_four_ranks_equal_one_process(self, runs, case):
        for report in runs[4][case]:
            assert_same_fit(runs[1][case][0], report)

    @pytest.mark.parametrize("world", [1, 2])
    def test_a_dataset_is_sharded_into_the_same_global_batches(self, runs, world):
        # A torch Dataset goes through DataLoader + ShardedBatches, arrays through
        # TensorBatches: both draw the batches one process draws from arrays.
        for report in runs[world]["dataset"]:
            assert_same_fit(runs[1]["fit-auto"][0], report)

    def test_a_float64_dataset_fit_alone_equals_two_ranks(self, runs):
        # In float64 only the all-reduce's order of sums differs: 1e-9 after 3
        # epochs (it was 3e-2 while a Dataset alone took skorch's own shuffling).
        alone = runs[1]["dataset64"][0]
        assert all(v.dtype == np.float64 for v in alone["params"].values())
        for report in runs[2]["dataset64"]:
            np.testing.assert_allclose(report["weights"], alone["weights"], rtol=0,
                                       atol=1e-9)
            for name, value in alone["params"].items():
                np.testing.assert_allclose(report["params"][name], value, rtol=0,
                                           atol=1e-9, err_msg=name)

    @pytest.mark.parametrize("world", [1, 2])
    def test_early_stopping_stops_every_rank_together(self, runs, world):
        for report in runs[world]["early-stop"]:
            assert "error" not in report
            assert len(report["train_loss"]) == 2

    def test_weights_cover_every_row(self, runs):
        weights = runs[2]["fit-ghost"][0]["weights"]
        assert weights.shape == (3, 150)  # epochs x rows, in the order of X
        assert np.all(weights >= 0) and np.all(weights.sum(axis=1) > 0)

    @pytest.mark.parametrize("world", [2, 4])
    def test_every_rank_ends_with_the_same_estimator(self, runs, world):
        for case, reports in runs[world].items():
            first = reports[0]
            for other in reports[1:]:
                np.testing.assert_array_equal(other["weights"], first["weights"])
                for name, value in first["params"].items():
                    np.testing.assert_array_equal(other["params"][name], value,
                                                  err_msg=f"{case} {name}")
                assert other["train_loss"] == first["train_loss"]


class TestRankZero:
    def test_rank_zero_alone_prints(self, runs):
        root = runs["root"] / "world2"
        assert "train_loss" in (root / "log0").read_text()
        assert "train_loss" not in (root / "log1").read_text()

    def test_rank_zero_alone_writes_checkpoints(self, runs):
        root = runs["root"] / "world2"
        assert any((root / "checkpoints-rank0").iterdir())
        # skorch's Checkpoint.initialize makes its folder on every rank.
        assert not any((root / "checkpoints-rank1").iterdir())

    def test_the_clean_loss_warning_is_raised_once(self, runs):
        assert runs[1]["alarm"][0]["warnings"] == ["CleanLossWarning"]
        assert [r["warnings"] for r in runs[2]["alarm"]] == [["CleanLossWarning"], []]

    def test_the_pickled_estimator_predicts_on_one_process(self, runs):
        X, _, _, _ = _problem()
        parallel = pickle.loads(runs[2]["fit-auto"][0]["estimator"])
        single = pickle.loads(runs[1]["fit-auto"][0]["estimator"])
        np.testing.assert_allclose(parallel.predict_proba(X), single.predict_proba(X),
                                   rtol=1e-5, atol=1e-6)

    def test_saved_params_load_on_one_process(self, runs):
        # A one-process fit of the same setting takes the parameters rank 0 saved.
        X, _, _, _ = _problem()
        net = pickle.loads(runs[1]["fit-auto"][0]["estimator"])
        with torch.no_grad():
            for param in net.module_.parameters():
                param.zero_()
        net.load_params(f_params=str(runs["root"] / "world2" / "fit-auto-params.pt"))
        parallel = pickle.loads(runs[2]["fit-auto"][0]["estimator"])
        np.testing.assert_array_equal(net.predict_proba(X), parallel.predict_proba(X))


class TestFailure:
    @pytest.mark.parametrize("case, message", [
        ("bad-input", "Input X contains NaN"),  # found by rank 1's validation
        ("fails", "feature 3 is out of range"),  # raised in rank 1's 4th forward
    ])
    def test_one_ranks_error_stops_every_rank(self, failures, case, message):
        errors = [report.get("error") for report in failures[case]]
        assert errors[0] == errors[1]
        kind, text = errors[0]
        assert kind == "ValueError"
        assert message in text and "rank 1 of 2" in text

    def test_a_nan_loss_on_one_rank_stops_every_rank(self, failures):
        # The summed loss is NaN on every rank, so FiniteLoss stops each of them.
        errors = [report.get("error") for report in failures["nonfinite"]]
        assert errors[0] == errors[1]
        assert errors[0][0] == "FloatingPointError"
        assert "loss became nan in epoch 1, batch 4" in errors[0][1]

    def test_a_killed_rank_stops_the_others_within_seconds(self, tmp_path):
        # Rank 1 dies by SIGKILL in its 4th step; rank 0 waits for it in that
        # step's collective. The 60 s timeout fails a hang (gloo's own is 30 min).
        report, = launch(tmp_path, 2, ["peer-killed"], timeout=60,
                         killed=(1,))["peer-killed"]
        kind, text = report["error"]
        assert kind == "PeerDiedError"
        assert "a peer rank of this data-parallel fit died" in text
        # The whole fit call on rank 0, its 3 steps before the kill included.
        assert report["seconds"] < 20

    @pytest.mark.parametrize("case", CALLBACK_FAILURES)
    def test_a_callback_raising_on_one_rank_stops_every_rank(self, callback_failures,
                                                             case):
        reports = callback_failures[case]
        errors = [report.get("error") for report in reports]
        assert errors[0] == errors[1]
        kind, text = errors[0]
        assert kind == "ValueError"
        assert "the user's callback failed" in text and "rank 1 of 2" in text
        for report in reports:
            # The whole failing fit call (a few epochs of 5 small steps).
            assert report["seconds"] < 20
            # All or nothing: the estimator of the fit before, on every rank.
            assert report["unchanged"]

    def test_a_failed_fit_leaves_no_fitted_state(self, failures):
        for report in failures["bad-input"]:
            assert "weights" not in report


class TestSharding:
    @pytest.mark.parametrize("n, world", [(32, 2), (33, 4), (3, 4), (1, 2)])
    def test_shards_put_together_are_the_batch(self, n, world):
        bounds = [shard_bounds(n, rank, world) for rank in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1

    def test_sharded_batches_are_the_global_batches(self):
        def batches(rank, world):
            return list(ShardedBatches(70, 16, shuffle=True,
                                       random_state=np.random.RandomState(3),
                                       rank=rank, world=world))
        whole = batches(0, 1)
        shards = [batches(rank, 3) for rank in range(3)]
        assert len(whole) == 5 and all(len(s) == 5 for s in shards)
        for step, rows in enumerate(whole):
            assert sum((s[step] for s in shards), []) == rows

    def test_tensor_batches_read_only_their_shard(self):
        X = torch.arange(20.0).reshape(10, 2)
        y = torch.arange(10)
        one = list(TensorBatches(X, y, 4, shuffle=True, with_index=True,
                                 random_state=np.random.RandomState(0)))
        two = [list(TensorBatches(X, y, 4, shuffle=True, with_index=True,
                                  random_state=np.random.RandomState(0), shard=(r, 2)))
               for r in range(2)]
        for step, ((Xb, index), yb) in enumerate(one):
            (X0, i0), y0 = two[0][step]
            (X1, i1), y1 = two[1][step]
            torch.testing.assert_close(torch.cat([X0, X1]), Xb)
            torch.testing.assert_close(torch.cat([i0, i1]), index)
            torch.testing.assert_close(torch.cat([y0, y1]), yb)

    def test_no_group_without_torch_distributed(self):
        assert current_group() is None


def _worker():
    sys.path.insert(0, str(WORKER.parent))
    try:
        import distributed_worker
    finally:
        sys.path.pop(0)
    return distributed_worker


def _problem():
    return _worker().problem()
