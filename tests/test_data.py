"""Batches: clean-batch cycling, the in-memory path, skorch's route, the demo."""

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier
from sk_l2rw.data import CleanBatches, IndexedDataset, TensorBatches


class TestCleanBatches:
    @pytest.mark.parametrize("n_clean, size", [(10, 3), (10, 10), (7, 4), (100, 32)])
    def test_each_pass_uses_every_row_once(self, n_clean, size):
        batches = CleanBatches(n_clean, size, random_state=0).take(60)
        assert batches.shape == (60, size)
        for row in batches:
            assert len(set(row)) == size  # without replacement within a batch
        flat = batches.ravel()
        for start in range(0, len(flat) - n_clean + 1, n_clean):
            assert sorted(flat[start:start + n_clean]) == list(range(n_clean))

    def test_reproducible_and_seed_dependent(self):
        a = CleanBatches(50, 8, random_state=1).take(20)
        b = CleanBatches(50, 8, random_state=1).take(20)
        c = CleanBatches(50, 8, random_state=2).take(20)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_rejects_batches_larger_than_the_set(self):
        with pytest.raises(ValueError, match="clean batch size"):
            CleanBatches(5, 6)


class TestTensorBatches:
    def test_shuffled_batches_cover_all_rows_with_their_positions(self):
        X = torch.arange(23.0)[:, None]
        y = torch.arange(23)
        seen = []
        for (Xb, index), yb in TensorBatches(X, y, 5, shuffle=True, with_index=True,
                                             random_state=np.random.RandomState(0)):
            assert torch.equal(Xb[:, 0].long(), index) and torch.equal(yb, index)
            seen.extend(index.tolist())
        assert sorted(seen) == list(range(23)) and seen != list(range(23))

    def test_prediction_batches_in_order(self):
        X = torch.arange(10.0)[:, None]
        out = torch.cat([Xb for Xb, yb in TensorBatches(X, None, 4)])
        assert torch.equal(out, X)

    def test_indexed_dataset_with_positions(self):
        ds = IndexedDataset(Dataset(np.arange(6.0)[:, None], np.arange(6)),
                            positions=[4, 1])
        (Xi, pos), yi = ds[0]
        assert pos == 4 and yi == 4 and len(ds) == 2


class TestSkorchRoute:
    def test_custom_iterator_takes_skorch_dataloader_and_same_weights(self):
        X, y = make_blobs_data(90)
        kwargs = dict(max_epochs=2, batch_size=16, lr=0.1, verbose=0, random_state=0,
                      iterator_train__shuffle=False)
        fast = L2RWClassifier(MLP, X[:10], y[:10], **kwargs).fit(X[10:], y[10:])
        slow = L2RWClassifier(MLP, X[:10], y[:10], iterator_train__num_workers=0,
                              **kwargs)
        assert not isinstance(slow.initialize().get_iterator(
            IndexedDataset(Dataset(X, y)), training=True), TensorBatches)
        slow.fit(X[10:], y[10:])
        np.testing.assert_allclose(fast.sample_weights_, slow.sample_weights_,
                                   rtol=1e-5, atol=1e-7)

    def test_train_split_leaves_validation_rows_nan(self):
        from skorch.dataset import ValidSplit
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:10], y[:10], train_split=ValidSplit(5),
                             max_epochs=2, verbose=0)
        net.fit(X[10:], y[10:])
        w = net.sample_weights_
        trained = ~np.isnan(w[0])
        assert trained.sum() == 72 and (~trained).sum() == 18
        assert "valid_loss" in net.history[-1]


def test_demo_runs_and_l2rw_wins():
    from sk_l2rw.demo import run
    r = run(max_epochs=25)
    assert r["l2rw_accuracy"] > r["plain_accuracy"]
    assert r["weight_flipped"] < r["weight_intact"]
