"""sk_l2rw.net: the skorch wiring's own costs and bookkeeping."""

import numpy as np
import pytest
import torch

from benchmarks.speed import CountOps
from conftest import make_blobs_data
from sk_l2rw import L2RWClassifier, net as net_module
from sk_l2rw.modules import MLP
from sk_l2rw.weights import effective_sample_share


@pytest.fixture(scope="module")
def fitted():
    # Unshuffled: the batches are rows 0-31, 32-63, ..., 192-199 of every epoch.
    X, y = make_blobs_data(230, seed=3)
    net = L2RWClassifier(MLP, X[:30], y[:30], module__hidden_layer_sizes=(16,),
                         max_epochs=3, batch_size=32, lr=0.1, random_state=0, verbose=0,
                         iterator_train__shuffle=False)
    return net.fit(X[30:], y[30:])


class TestWeightBookkeeping:
    def test_recording_a_step_runs_no_tensor_operation(self, monkeypatch):
        counts = []
        record = net_module._Run.record

        def counted(self, index, weights):
            with CountOps() as mode:
                record(self, index, weights)
            counts.append(mode.count)

        monkeypatch.setattr(net_module._Run, "record", counted)
        X, y = make_blobs_data(100)
        L2RWClassifier(MLP, X[:20], y[:20], max_epochs=2, batch_size=16,
                       verbose=0).fit(X[20:], y[20:])
        assert len(counts) == 2 * 5 and set(counts) == {0}

    def test_epoch_statistics_are_those_of_each_batch(self, fitted):
        weights = fitted.sample_weights_
        assert weights.shape == (3, 200) and not np.isnan(weights).any()
        for epoch, row in enumerate(fitted.history):
            assert row["weight_zero_frac"] == pytest.approx((weights[epoch] == 0).mean())
            shares = [effective_sample_share(torch.as_tensor(weights[epoch, i:i + 32]))
                      for i in range(0, 200, 32)]
            assert len(shares) == 7
            assert row["weight_ess"] == pytest.approx(float(sum(shares)) / 7, rel=1e-5)
