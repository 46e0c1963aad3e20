"""One rank of a data-parallel fit, for tests/test_distributed.py.

Run as ``python tests/distributed_worker.py RANK WORLD RENDEZVOUS OUT CASES`` by the
test (``WORLD`` processes, ``gloo``; ``WORLD=1`` fits on one process without
``torch.distributed``). ``CASES`` (comma-separated) picks the fits, run one after
the other in one process group, as a script that fits twice would; for each, the
rank writes what it ended with to ``OUT/{CASE}-rank{RANK}.pkl``: the fitted
estimator's weights, losses and parameters, or the error it raised.
"""

import os
import pickle
import signal
import sys
import time
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback
from torch import nn


class FailsOnRank(nn.Module):
    """A small MLP whose training forward raises (or, with ``nan=True``, returns NaN
    from then on) on one rank from one call on: a failure found inside a step by
    one rank only."""

    def __init__(self, n_features=6, n_classes=3, fail_rank=1, fail_call=4, nan=False,
                 kill=False):
        super().__init__()
        self.hidden = nn.Linear(n_features, 16)
        self.out = nn.Linear(16, n_classes)
        self.fail_rank, self.fail_call, self.calls = fail_rank, fail_call, 0
        self.nan, self.kill = nan, kill

    def forward(self, X):
        if self.training:
            self.calls += 1
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            if rank == self.fail_rank and self.calls >= self.fail_call:
                if self.kill:  # the process dies in the middle of a step
                    os.kill(os.getpid(), signal.SIGKILL)
                if self.nan:
                    return self.out(torch.relu(self.hidden(X))) * float("nan")
                raise ValueError("feature 3 is out of range in this rank's rows")
        return self.out(torch.relu(self.hidden(X)))


class RaisesOnRank(Callback):
    """A user's callback that raises on one rank alone, outside a step: in ``event``
    (``on_epoch_end``, ``on_batch_end`` of a training batch, ``on_train_end``) of
    epoch ``epoch`` (and batch ``batch``), while ``active``."""

    def __init__(self, event="on_epoch_end", epoch=2, batch=None, rank=1, active=False):
        self.event, self.epoch, self.batch = event, epoch, batch
        self.rank, self.active = rank, active

    def _maybe_raise(self, net, event):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if (self.active and event == self.event and rank == self.rank
                and len(net.history) == self.epoch
                and (self.batch is None or len(net.history[-1, "batches"]) == self.batch)):
            raise ValueError(f"the user's callback failed in {event} on this rank")

    def on_epoch_end(self, net, **kwargs):
        self._maybe_raise(net, "on_epoch_end")

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self._maybe_raise(net, "on_batch_end")

    def on_train_end(self, net, **kwargs):
        self._maybe_raise(net, "on_train_end")


#: Case -> where rank 1's callback raises: (event, epoch, batch). 150 rows in
#: batches of 32 make 5 batches an epoch; 3 epochs.
CALLBACK_FAILURES = {
    "callback-epoch-end": ("on_epoch_end", 2, None),
    "callback-batch-end": ("on_batch_end", 2, 2),  # held until the next step
    "callback-last-batch": ("on_batch_end", 1, 5),  # held until the epoch's end
    "callback-train-end": ("on_train_end", 3, None),
}


def problem(n=150, d=6, classes=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    y = np.minimum(y, classes - 1)
    flip = rng.rand(n) < 0.3
    y_noisy = np.where(flip, rng.randint(classes, size=n), y)
    Xc = rng.randn(30, d).astype(np.float32)
    yc = np.minimum((Xc[:, 0] + 0.5 * Xc[:, 1] > 0).astype(np.int64) + (Xc[:, 2] > 1),
                    classes - 1)
    return X, y_noisy, Xc, yc


def estimator(case, Xc, yc):
    from sk_l2rw import L2RWClassifier, L2RWRegressor
    from sk_l2rw.modules import MLP

    common = dict(max_epochs=3, batch_size=32, lr=0.1, random_state=7, verbose=0)
    if case.startswith("regressor"):
        return L2RWRegressor(MLP, Xc, Xc[:, :1] + Xc[:, 1:2], module__hidden_layer_sizes=(16,),
                             meta_gradient="ghost", **common)
    meta = case.split("-")[1] if case.startswith(("fit-", "clean-")) else "auto"
    if case in ("fails", "nonfinite", "peer-killed"):
        return L2RWClassifier(FailsOnRank, Xc, yc, criterion=nn.CrossEntropyLoss,
                              module__nan=case == "nonfinite",
                              module__kill=case == "peer-killed", meta_gradient="ghost",
                              **common)
    return L2RWClassifier(MLP, Xc, yc, module__hidden_layer_sizes=(16,),
                          meta_gradient=meta, train_on_clean=case.startswith("clean"),
                          **common)


def main(rank, world, rendezvous, out, cases):
    torch.set_num_threads(1)
    if world > 1:
        torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}",
                                             rank=rank, world_size=world)
    for case in cases.split(","):
        fit_case(rank, case, out)
    if world > 1 and "peer-killed" in cases:
        sys.stdout.flush()
        os._exit(0)  # the group lost a rank: nothing left to tear down
    if world > 1:
        # No rank tears the group down while another still uses it.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        # gloo's threads can still be winding down when the interpreter exits, and
        # then C++ aborts ("terminate called without an active exception") after the
        # results were written: end the worker at once, its work being done.
        sys.stdout.flush()
        os._exit(0)


def fit_case(rank, case, out):
    # dataset64: in float64, where the one-process fit is matched to 1e-9.
    dtype = torch.float64 if case.endswith("64") else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        _fit_case(rank, case, out)
    finally:
        torch.set_default_dtype(previous)


def _callback_case(rank, case, out):
    """Fit, then fit again with a callback that raises on rank 1 alone: every rank
    must raise it, within seconds, and keep the first fit's estimator."""
    X, y, Xc, yc = problem()
    event, epoch, batch = CALLBACK_FAILURES[case]
    net = estimator(case, Xc, yc).set_params(
        callbacks=[("raises", RaisesOnRank(event, epoch, batch))])
    net.fit(X, y)

    def state():
        return dict(proba=net.predict_proba(X), weights=net.sample_weights_.copy(),
                    train_loss=net.history[:, "train_loss"],
                    params={k: v.detach().cpu().numpy().copy()
                            for k, v in net.module_.state_dict().items()})

    before = state()
    dict(net.callbacks_)["raises"].active = True
    report = {"rank": rank}
    start = time.perf_counter()
    try:
        net.fit(X, y)
    except Exception as exc:
        report["error"] = (type(exc).__name__, str(exc))
    report["seconds"] = time.perf_counter() - start
    after = state()
    report["unchanged"] = (
        all(np.array_equal(before[k], after[k]) for k in ("proba", "weights"))
        and before["train_loss"] == after["train_loss"]
        and all(np.array_equal(v, after["params"][k]) for k, v in before["params"].items()))
    with open(f"{out}/{case}-rank{rank}.pkl", "wb") as f:
        pickle.dump(report, f)


def _fit_case(rank, case, out):
    from sk_l2rw.exceptions import L2RWWarning

    if case in CALLBACK_FAILURES:
        return _callback_case(rank, case, out)

    X, y, Xc, yc = problem()
    if case.endswith("64"):
        X, Xc = X.astype(np.float64), Xc.astype(np.float64)
    if case.startswith("regressor"):
        y = (X[:, :1] + X[:, 1:2]).astype(np.float32)
    if case == "bad-input" and rank == 1:
        X = X.copy()
        X[17, 2] = np.nan
    if case.startswith("dataset"):
        # A plain torch Dataset: skorch's DataLoader route, not the in-memory one.
        fit_X = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
        fit_y = None
    else:
        fit_X, fit_y = X, y
    net = estimator(case, Xc, yc)
    if case.startswith("dataset"):
        net.set_params(classes=[0, 1, 2])
    if case == "fit-auto":  # prints and checkpoints: on rank 0 alone
        from skorch.callbacks import Checkpoint
        net.set_params(verbose=1, callbacks=[
            Checkpoint(monitor=None, dirname=f"{out}/checkpoints-rank{rank}")])
    if case == "early-stop":  # no epoch improves on the first by 10: stops after 2
        from skorch.callbacks import EarlyStopping
        net.set_params(callbacks=[EarlyStopping(monitor="train_loss", patience=1,
                                                threshold=10.0, threshold_mode="abs")])
    if case == "alarm":  # a rate that makes the clean loss rise: one warning
        net.set_params(lr=2.0, callbacks__clean_loss_alarm__rise=1.0)
    report = {"rank": rank}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            net.fit(fit_X, fit_y)
        except Exception as exc:
            report["error"] = (type(exc).__name__, str(exc))
        report["seconds"] = time.perf_counter() - start
    report["warnings"] = [type(w.message).__name__ for w in caught
                          if issubclass(w.category, L2RWWarning)]
    if "error" not in report:
        report.update(
            weights=net.sample_weights_,
            train_loss=net.history[:, "train_loss"],
            clean_loss=net.history[:, "clean_loss"],
            batch_sizes=[[b["train_batch_size"] for b in e["batches"]] for e in net.history],
            params={k: v.detach().cpu().numpy().copy()
                    for k, v in net.module_.state_dict().items()},
            meta_gradient=net.meta_gradient_,
            estimator=pickle.dumps(net) if rank == 0 else None,
        )
        if rank == 0:
            net.save_params(f_params=f"{out}/{case}-params.pt")
    with open(f"{out}/{case}-rank{rank}.pkl", "wb") as f:
        pickle.dump(report, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
