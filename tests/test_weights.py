"""Steps 4 and 5 of the paper's Algorithm 1: clip, normalise, effective sample size."""

import pytest
import torch

from sk_l2rw.weights import (effective_sample_share, effective_sample_shares,
                             normalize_weights)


class TestWeights:
    def test_clip_and_normalise(self):
        w = normalize_weights(torch.tensor([0.5, -1.0, 1.5, 0.0]))
        torch.testing.assert_close(w, torch.tensor([0.25, 0.0, 0.75, 0.0]))

    def test_scale_invariant(self):
        u = torch.randn(50)
        torch.testing.assert_close(normalize_weights(u), normalize_weights(7.3 * u))

    def test_all_negative_batch_is_all_zero_not_nan(self):
        w = normalize_weights(-torch.rand(10) - 0.1)
        assert torch.equal(w, torch.zeros(10))

    def test_effective_sample_share(self):
        assert effective_sample_share(torch.full((4,), 0.25)).item() == pytest.approx(1)
        one_hot = torch.tensor([0.0, 1.0, 0.0, 0.0])
        assert effective_sample_share(one_hot).item() == pytest.approx(0.25)
        assert effective_sample_share(torch.zeros(4)).item() == 0

    def test_effective_sample_shares_equal_one_batch_at_a_time(self):
        batches = [normalize_weights(torch.randn(n)) for n in (5, 3, 5, 1)]
        batches.append(torch.zeros(4))  # an all-negative batch
        got = effective_sample_shares(torch.cat(batches), [len(b) for b in batches])
        expected = torch.stack([effective_sample_share(b) for b in batches])
        torch.testing.assert_close(got, expected)
