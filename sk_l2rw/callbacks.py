"""The estimators' monitoring, as skorch callbacks.

L2RW estimators install these through ``_default_callbacks``, as skorch installs its
own, so each can be configured or switched off by name::

    L2RWClassifier(..., callbacks__clean_loss_alarm__rise=5)
    L2RWClassifier(..., callbacks__weight_stats=None)

=====================  ===================================================
name                   what it does
=====================  ===================================================
``clean_loss``         :class:`CleanLoss`: ``clean_loss``, ``clean_loss_best``
``weight_stats``       :class:`WeightStats`: ``weight_zero_frac``, ``weight_ess``
``clean_loss_alarm``   :class:`CleanLossAlarm`: warns when the clean loss blows up
``finite_loss``        :class:`FiniteLoss`: stops on a non-finite training loss
=====================  ===================================================

They read the running fit's numbers from the estimator's ``epoch_clean_loss`` and
``epoch_weight_stats`` (and the rest from ``net.history``), so they work only on
L2RW estimators.
"""

import math
import warnings

import torch
from skorch.callbacks import Callback

from sk_l2rw.data import take_rows

from sk_l2rw.exceptions import CleanLossWarning

__all__ = ["CleanLoss", "WeightStats", "CleanLossAlarm", "FiniteLoss",
           "clean_loss_alarm", "CLEAN_LOSS_RISE"]

#: The run is blowing up when the clean loss is this many times above its best so
#: far and above its first epoch's value (all progress on the clean set undone). The
#: second condition spares fits that drive a small clean set's loss to ~0.005 and
#: then drift to ~0.05: over 124 fits (benchmarks/clean_loss_warning.py: the collapse
#: study, 4-vs-9 with an MLP and a LeNet) both rules caught 9 of 9 failed runs at the
#: same epoch; the ratio alone also fired on 7 fits that did not fail, the combined
#: rule on none. (Weights concentrated on few rows are not warned about: under class
#: imbalance that is the intended behaviour.)
CLEAN_LOSS_RISE = 10.0


def clean_loss_alarm(clean_losses, rise=CLEAN_LOSS_RISE):
    """Whether the last epoch's clean loss says the run is blowing up.

    True when it is more than ``rise`` times the best earlier value and above the
    first epoch's value.

    Parameters
    ----------
    clean_losses : sequence of float
        The clean loss of every epoch so far, oldest first.
    rise : float, default=10

    Returns
    -------
    bool
    """
    if len(clean_losses) < 2:
        return False
    *earlier, loss = clean_losses
    return bool(loss > rise * min(earlier) and loss > earlier[0])


def clean_set_loss(net, X, y, w_clean=None):
    """Mean loss of ``net`` over the whole clean set ``X, y`` (tensors on the
    device), in evaluation mode, in batches of ``net.batch_size``; weighted by
    ``w_clean`` (per clean row) when given. What :class:`CleanLoss` records."""
    net._set_training(False)
    n = len(y)
    step = net.batch_size if net.batch_size > 0 else n
    total = torch.zeros((), dtype=torch.float64, device=y.device)
    # w_clean holds c_j / clean batch size; its ratios are all that count here.
    w = None if w_clean is None else w_clean.double()
    with torch.no_grad():
        for start in range(0, n, step):
            y_pred = net.infer(take_rows(X, slice(start, start + step)))
            losses = net.get_sample_losses(y_pred, y[start:start + step])
            if w is not None:
                losses = losses.double() * w[start:start + step]
            total += losses.sum().double()
    # One copy to the host: float64 division is the same on either side.
    return (total / (n if w is None else w.sum())).item()


class MonitoringMixin:
    """What these callbacks read of the fit in progress: a base of
    :class:`sk_l2rw.net.L2RWMixin` (its ``_run_`` holds the fit's state)."""

    def epoch_clean_loss(self):
        """Mean loss over the whole clean set, in evaluation mode (class-weighted
        with ``clean_class_weight``), computed now; None outside a fit or when the
        fit has no clean set. The ``clean_loss`` callback records it per epoch."""
        run = getattr(self, "_run_", None)
        if run is None or run.X_clean is None:
            return None
        return self._clean_loss(run)

    def epoch_weight_stats(self):
        """``(weight_zero_frac, weight_ess)`` of the epoch just closed: the share of
        its rows that got weight 0 and its batches' mean effective sample share;
        None outside a fit or before a step. The ``weight_stats`` callback records
        them."""
        run = getattr(self, "_run_", None)
        if run is None or not run.batches:
            return None
        return run.zeros / max(run.rows, 1), run.ess / run.batches

    def _clean_loss(self, run):
        """Mean loss over the whole clean set, in evaluation mode (weighted by the
        clean rows' class weights, when there are any)."""
        return clean_set_loss(self, run.X_clean, run.y_clean, run.w_clean)


def _ask(net, name):
    """``net.name()``: what an L2RW estimator reports of the fit in progress (None
    outside one); None from any other net."""
    method = getattr(net, name, None)
    return None if method is None else method()


class CleanLoss(Callback):
    """Record the mean loss on the whole clean set after every epoch.

    Writes ``clean_loss`` (class-weighted when the classifier has
    ``clean_class_weight``) and ``clean_loss_best`` (True when it is the lowest so
    far, like skorch's ``valid_loss_best``: ``Checkpoint(monitor="clean_loss_best")``).
    Nothing is recorded when the fit has no clean set.
    """

    def on_epoch_end(self, net, **kwargs):
        loss = _ask(net, "epoch_clean_loss")
        if loss is None:
            return
        earlier = [row["clean_loss"] for row in net.history[:-1] if "clean_loss" in row]
        net.history.record("clean_loss", loss)
        net.history.record("clean_loss_best", not earlier or loss < min(earlier))


class WeightStats(Callback):
    """Record how the epoch's weights were spread.

    ``weight_zero_frac``: share of the rows that got weight 0. ``weight_ess``: the
    effective sample size of each batch's weights as a share of the batch
    (:func:`sk_l2rw.weights.effective_sample_share`), averaged over the batches.
    The sums stay on the device during the epoch and reach the host with the
    epoch's weights, in one copy.
    """

    def on_epoch_end(self, net, **kwargs):
        stats = _ask(net, "epoch_weight_stats")
        if stats is None:
            return
        zero_frac, ess = stats
        net.history.record("weight_zero_frac", zero_frac)
        net.history.record("weight_ess", ess)


class CleanLossAlarm(Callback):
    """Warn, at most once per fit, when the clean loss blows up.

    Uses :func:`clean_loss_alarm` on the ``clean_loss`` history (so the
    ``clean_loss`` callback must be on): a rise of more than ``rise`` times the best
    epoch, and above the first epoch's value, means the weighted steps are too large
    for this learning rate.

    Parameters
    ----------
    rise : float, default=10
    """

    def __init__(self, rise=CLEAN_LOSS_RISE):
        self.rise = rise

    def initialize(self):
        self.warned_ = False
        return self

    def on_train_begin(self, net, **kwargs):
        self.warned_ = False

    def on_epoch_end(self, net, **kwargs):
        losses = [row["clean_loss"] for row in net.history if "clean_loss" in row]
        if self.warned_ or not losses or "clean_loss" not in net.history[-1]:
            return
        if clean_loss_alarm(losses, self.rise):
            self.warned_ = True
            *earlier, loss = losses
            warnings.warn(
                f"the clean loss rose to {loss:.3g}, {loss / min(earlier):.0f}x its "
                f"best ({min(earlier):.3g}) and above its first epoch's "
                f"({earlier[0]:.3g}): the weights' multiplied steps are too large for "
                "this learning rate. Lower lr (e.g. 5x); see 'Learning rate and "
                "collapse' in the user guide", CleanLossWarning, stacklevel=2)


class FiniteLoss(Callback):
    """Stop with a clear error when the training loss is no longer finite.

    skorch has already copied the batch loss to the host for its history, so the
    check costs no extra synchronisation.
    """

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        loss = net.history[-1, "batches", -1, "train_loss"]
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"training diverged: the loss became {loss} in epoch {len(net.history)}, "
                f"batch {len(net.history[-1, 'batches'])}; lower the learning rate "
                f"(lr={net.lr}) or scale the features")
