"""sk_l2rw.callbacks: the monitoring installed by name, its warning, its switches."""

import warnings

import pytest

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier
from sk_l2rw.exceptions import CleanLossWarning

FAST = dict(max_epochs=3, lr=0.1, batch_size=32, verbose=0, random_state=0)


class TestCleanLossWarning:
    @staticmethod
    def _fit_with_clean_losses(monkeypatch, losses):
        """Fit with the clean loss of each epoch scripted; returns the warnings."""
        script = iter(losses)
        monkeypatch.setattr(L2RWClassifier, "_clean_loss", lambda self, run: next(script))
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:20], y[:20], **dict(FAST, max_epochs=len(losses)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net.fit(X[20:], y[20:])
        assert list(net.history[:, "clean_loss"]) == list(losses)
        return [str(w.message) for w in caught if issubclass(w.category, CleanLossWarning)]

    def test_warns_once_when_the_loss_passes_its_first_epoch(self, monkeypatch):
        # Epoch 3 is 20x the best but below epoch 1: a small clean set fitted
        # almost perfectly and drifting, no alarm. Epoch 4 undoes all progress.
        messages = self._fit_with_clean_losses(monkeypatch, [0.5, 0.01, 0.2, 0.6, 0.9])
        assert len(messages) == 1
        assert "rose to 0.6, 60x its best (0.01)" in messages[0]
        assert "first epoch's (0.5)" in messages[0] and "Lower lr" in messages[0]

    def test_no_warning_for_a_rise_below_the_first_epoch(self, monkeypatch):
        assert not self._fit_with_clean_losses(monkeypatch, [0.7, 0.004, 0.05, 0.3])

    def test_rise_is_configured_by_name(self, monkeypatch):
        losses = iter([0.5, 0.1, 0.6])
        monkeypatch.setattr(L2RWClassifier, "_clean_loss", lambda self, run: next(losses))
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:20], y[:20], **dict(FAST, max_epochs=3))
        net.set_params(callbacks__clean_loss_alarm__rise=5)
        with pytest.warns(CleanLossWarning, match="6x its best"):
            net.fit(X[20:], y[20:])
        losses = iter([0.5, 0.1, 0.6])
        net.set_params(callbacks__clean_loss_alarm__rise=7)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CleanLossWarning)
            net.fit(X[20:], y[20:])


class TestMonitoringCallbacks:
    def test_installed_by_name_before_the_log(self):
        net = L2RWClassifier(MLP, verbose=0)
        names = [name for name, _ in net._default_callbacks]
        ours = ["clean_loss", "weight_stats", "clean_loss_alarm", "finite_loss"]
        assert names[names.index("clean_loss"):names.index("clean_loss") + 4] == ours
        assert names.index("finite_loss") < names.index("print_log")

    def test_switched_off_by_name(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:20], y[:20], max_epochs=2, verbose=0,
                             callbacks__weight_stats=None, callbacks__clean_loss=None)
        net.fit(X[20:], y[20:])
        assert "weight_ess" not in net.history[-1] and "clean_loss" not in net.history[-1]
        assert net.sample_weights_.shape == (2, 80)  # the weight record is no callback

    def test_replaced_by_a_user_callback(self):
        from sk_l2rw.callbacks import WeightStats

        class Counting(WeightStats):
            calls = 0

            def on_epoch_end(self, net, **kwargs):
                Counting.calls += 1
                super().on_epoch_end(net, **kwargs)

        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:20], y[:20], max_epochs=3, verbose=0,
                             callbacks__weight_stats=Counting())
        net.fit(X[20:], y[20:])
        assert Counting.calls == 3 and "weight_ess" in net.history[-1]
