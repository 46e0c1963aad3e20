"""One L2RW training step: meta-gradients, weights and the weighted gradient.

Every ``*_step`` function here takes the same arguments and does the same thing with a
different computation of the meta-gradients ``u_i = -dL_clean(theta'(eps))/d eps_i``
(``../shared/ALGORITHM.md``):

``reference``
    The paper's own computation: double back-propagation through one look-ahead SGD
    step. Slow, but obviously right; every other computation is tested against it.
``jvp``
    ``u_i = alpha * <grad f_i, grad L_clean>`` as one forward-mode Jacobian-vector
    product of the per-example loss vector along the clean gradient. Works for any
    module ``torch.func`` supports, batch normalisation included.
``ghost``
    The same dot products layer by layer from each layer's inputs and output
    gradients (:mod:`sk_l2rw.ghost`); the weighted update reuses them.
``plain``
    Uniform weights ``1/n``: ordinary training, used when there is no clean set.

Every step also takes ``clean_weights`` (the clean loss is ``sum_j v_j f^clean_j``;
None means the paper's mean) and ``clean_share`` (the update also trains on the clean
batch, with total weight ``clean_share`` split over its rows in proportion to ``v``;
0 means the paper's update, which uses the clean rows only as a yardstick).

Each step leaves ``p.grad`` of every trainable parameter of ``module`` equal to the
gradient of ``sum_i w_i f_i`` (plus the clean part when ``clean_share > 0``), so the
caller's optimizer takes the real step, changes
the module's buffers exactly as one ordinary training forward on the batch would
(batch-norm running statistics move once), and never touches optimizer state.
"""

import contextlib
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn
from torch.func import functional_call, jvp

from sk_l2rw.weights import normalize_weights

__all__ = [
    "StepResult",
    "reference_step",
    "jvp_step",
    "jvp_meta_gradients",
    "plain_step",
    "clean_objective",
    "clean_update_weights",
    "trainable_parameters",
]


class StepResult(NamedTuple):
    """What one training step returns.

    Attributes
    ----------
    loss : torch.Tensor
        The weighted training loss ``sum_i w_i f_i`` (detached scalar).
    y_pred : torch.Tensor or tuple
        The module's output on the training batch (detached).
    weights : torch.Tensor of shape (n,)
        The normalised example weights.
    meta_gradients : torch.Tensor of shape (n,)
        The meta-gradients ``u_i`` before clipping.
    """

    loss: torch.Tensor
    y_pred: object
    weights: torch.Tensor
    meta_gradients: torch.Tensor


def trainable_parameters(module):
    """Names and tensors of the parameters that receive gradients.

    Tied parameters appear once (``named_parameters`` removes duplicates); frozen
    ones (``requires_grad=False``) not at all.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    names : list of str
    params : list of torch.nn.Parameter
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def call_module(module, X, state=None, forward_kwargs=None):
    """Call ``module`` on ``X`` the way skorch does, optionally functionally.

    Parameters
    ----------
    module : torch.nn.Module
    X : torch.Tensor or Mapping of str to torch.Tensor
        A mapping is passed as keyword arguments, as skorch does for dict inputs.
    state : dict or None
        Parameters and buffers to use instead of the module's own
        (``torch.func.functional_call``).
    forward_kwargs : dict or None
        Extra keyword arguments for ``forward``.
    """
    kwargs = dict(forward_kwargs or {})
    if isinstance(X, Mapping):
        kwargs.update(X)
        args = ()
    else:
        args = (X,)
    if state is None:
        return module(*args, **kwargs)
    return functional_call(module, state, args, kwargs)


def _private_buffers(module):
    # Meta passes run the module in training mode; cloned buffers take the
    # running-statistics updates so that only the real forward moves the module's.
    return {name: b.clone() for name, b in module.named_buffers()}


@contextlib.contextmanager
def _statistics_untracked(module):
    """Batch norm in training mode without updating running statistics.

    The output is the same (training mode normalises with the batch's own
    statistics); ``torch.func`` transforms refuse the in-place update.
    """
    layers = [m for m in module.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.training and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def _dense(X):
    """``X`` (or every value of a dict X) with sparse tensors made dense."""
    if isinstance(X, Mapping):
        return {key: _dense(value) for key, value in X.items()}
    return X.to_dense() if torch.is_tensor(X) and X.is_sparse else X


def _detach(y_pred):
    if isinstance(y_pred, tuple):
        return tuple(t.detach() if torch.is_tensor(t) else t for t in y_pred)
    return y_pred.detach()


def _weighted_backward(losses, weights):
    weighted = (weights * losses).sum()
    weighted.backward()
    return weighted.detach()


def clean_objective(losses, clean_weights=None):
    """The clean loss that defines the weights: ``mean_j f_j``, or ``sum_j v_j f_j``.

    Parameters
    ----------
    losses : torch.Tensor of shape (m,)
        Per-row losses on the clean batch.
    clean_weights : torch.Tensor of shape (m,) or None
        Non-negative weights ``v_j`` of the clean rows (class weights over the batch
        size); None gives every row ``1/m``.

    Returns
    -------
    torch.Tensor, scalar
    """
    if clean_weights is None:
        return losses.mean()
    return (clean_weights.to(losses.dtype) * losses).sum()


def clean_update_weights(clean_weights, m, clean_share, *, dtype, device):
    """Weights of the clean rows in the update: ``clean_share * v_j / sum_k v_k``.

    Parameters
    ----------
    clean_weights : torch.Tensor of shape (m,) or None
        As in :func:`clean_objective`; None means equal shares.
    m : int
        Rows in the clean batch.
    clean_share : float
        Total weight of the clean batch in the update.

    Returns
    -------
    torch.Tensor of shape (m,)
        Sums to ``clean_share``, or is all zero when every ``v_j`` is 0.
    """
    if clean_weights is None:
        return torch.full((m,), clean_share / m, dtype=dtype, device=device)
    v = clean_weights.to(dtype)
    return v * (clean_share / v.sum().clamp(min=torch.finfo(dtype).tiny))


def _update_backward(module, loss_fn, losses, weights, X_clean, y_clean, *,
                     clean_weights, clean_share, forward_kwargs):
    """Backward of ``sum_i w_i f_i`` (+ the clean batch's share); the loss stepped on.

    The clean rows go through the module a second time at the current parameters,
    with batch-norm statistics untracked: the training batch alone moves the buffers.
    """
    total = (weights * losses).sum()
    if clean_share:
        with _statistics_untracked(module):
            clean_pred = call_module(module, X_clean, forward_kwargs=forward_kwargs)
        clean_losses = loss_fn(clean_pred, y_clean)
        shares = clean_update_weights(clean_weights, clean_losses.shape[0], clean_share,
                                      dtype=clean_losses.dtype, device=clean_losses.device)
        total = total + (shares * clean_losses).sum()
    total.backward()
    return total.detach()


def plain_step(module, loss_fn, X, y, X_clean=None, y_clean=None, *, lr=1.0,
               forward_kwargs=None, clean_weights=None, clean_share=0.0, normalize=None):
    """Ordinary training with uniform weights ``1/n`` (no clean set).

    Parameters are those of :func:`reference_step`; the clean set and its weights
    are ignored.

    Returns
    -------
    StepResult
        ``meta_gradients`` are all zero.
    """
    y_pred = call_module(module, X, forward_kwargs=forward_kwargs)
    losses = loss_fn(y_pred, y)
    n = losses.shape[0]
    if normalize is None:
        weights = torch.full_like(losses.detach(), 1.0 / n)
    else:  # uniform over the whole batch of a data-parallel step
        weights = normalize(torch.ones_like(losses.detach()))
    loss = _weighted_backward(losses, weights)
    return StepResult(loss, _detach(y_pred), weights, torch.zeros_like(weights))


def reference_step(module, loss_fn, X, y, X_clean, y_clean, *, lr=1.0,
                   forward_kwargs=None, clean_weights=None, clean_share=0.0,
                   normalize=None):
    """The paper's computation: double back-propagation through a look-ahead step.

    1. ``f_i`` from the real forward on the training batch, perturbed by ``eps = 0``.
    2. ``theta' = theta - lr * grad sum_i eps_i f_i``, with the graph kept.
    3. ``L_clean(theta')`` through ``torch.func.functional_call``.
    4. ``u = -dL_clean/d eps``; weights as :func:`~sk_l2rw.weights.normalize_weights`.
    5. Backward of ``sum_i w_i f_i`` through the graph of step 1 (plus
       ``clean_share`` times the clean loss at ``theta``, when positive).

    Parameters
    ----------
    module : torch.nn.Module
        In training mode.
    loss_fn : callable
        ``loss_fn(y_pred, y) -> per-example losses of shape (n,)``.
    X, y : training batch, already on the module's device.
    X_clean, y_clean : clean batch, likewise.
    lr : float
        Step size ``alpha`` of the look-ahead. Normalisation cancels it from the
        weights; it only scales ``meta_gradients``.
    forward_kwargs : dict or None
        Extra keyword arguments for the module's ``forward``.
    clean_weights : torch.Tensor of shape (m,) or None
        The clean loss is ``sum_j v_j f^clean_j`` (:func:`clean_objective`); None
        means the mean, as in the paper. Only ratios matter for the weights.
    clean_share : float, default=0
        When positive, the update also trains on the clean batch: the loss stepped
        on is ``sum_i w_i f_i + sum_j r_j f^clean_j`` with
        ``r = clean_update_weights(v, m, clean_share)``. The weights ``w`` are the
        same either way.
    normalize : callable or None
        Meta-gradients to weights; None is
        :func:`~sk_l2rw.weights.normalize_weights`. A data-parallel fit passes one
        that normalises over the whole batch of every rank
        (:meth:`sk_l2rw.distributed.Group.normalizer`).

    Returns
    -------
    StepResult
        ``loss`` is the loss stepped on.
    """
    names, params = trainable_parameters(module)
    y_pred = call_module(module, X, forward_kwargs=forward_kwargs)
    losses = loss_fn(y_pred, y)
    eps = torch.zeros_like(losses, requires_grad=True)
    grads = torch.autograd.grad(
        (eps * losses).sum(), params, create_graph=True, allow_unused=True)
    state = _private_buffers(module)
    state.update({
        name: p if g is None else p - lr * g
        for name, p, g in zip(names, params, grads)
    })
    clean_pred = call_module(module, X_clean, state, forward_kwargs)
    clean_loss = clean_objective(loss_fn(clean_pred, y_clean), clean_weights)
    (d_eps,) = torch.autograd.grad(clean_loss, eps, retain_graph=True,
                                   allow_unused=True)
    if d_eps is None:  # clean loss does not depend on any trainable parameter
        d_eps = torch.zeros_like(eps)
    meta = -d_eps.detach()
    weights = (normalize or normalize_weights)(meta)
    loss = _update_backward(module, loss_fn, losses, weights, X_clean, y_clean,
                            clean_weights=clean_weights, clean_share=clean_share,
                            forward_kwargs=forward_kwargs)
    return StepResult(loss, _detach(y_pred), weights, meta)


def clean_gradient(module, loss_fn, X_clean, y_clean, *, forward_kwargs=None,
                   clean_weights=None):
    """Gradient of the clean loss (:func:`clean_objective`) w.r.t. the trainable
    parameters.

    Runs in the module's current mode on private copies of its buffers.

    Returns
    -------
    grads : tuple of torch.Tensor
        One per :func:`trainable_parameters`, zeros where unused.
    """
    names, params = trainable_parameters(module)
    state = _private_buffers(module)
    clean_pred = call_module(module, X_clean, state, forward_kwargs)
    clean_loss = clean_objective(loss_fn(clean_pred, y_clean), clean_weights)
    grads = torch.autograd.grad(clean_loss, params, allow_unused=True)
    return tuple(torch.zeros_like(p) if g is None else g
                 for p, g in zip(params, grads))


def jvp_meta_gradients(module, loss_fn, X, y, X_clean, y_clean, *, lr=1.0,
                       forward_kwargs=None, clean_weights=None):
    """Meta-gradients as one forward-mode product along the clean gradient.

    ``u_i = lr * d/dt f_i(theta + t * grad L_clean)`` at ``t = 0``, which equals the
    reference's ``-dL_clean(theta'(eps))/d eps_i`` exactly (no Hessian is involved
    at ``eps = 0``). Batch statistics are handled exactly: ``f_i`` is differentiated
    as a function of the parameters through the statistics of its batch. Changes
    neither the module's buffers nor any gradient. A sparse training batch is
    densified for the product (torch has no forward-mode sparse kernels).

    Parameters are those of :func:`reference_step`.

    Returns
    -------
    meta_gradients : torch.Tensor of shape (n,)
    """
    names, params = trainable_parameters(module)
    tangent = clean_gradient(module, loss_fn, X_clean, y_clean,
                             forward_kwargs=forward_kwargs, clean_weights=clean_weights)
    fixed = _private_buffers(module)
    fixed.update({n: p.detach() for n, p in module.named_parameters()
                  if not p.requires_grad})

    def sample_losses(trainable):
        state = dict(fixed)
        state.update(trainable)
        return loss_fn(call_module(module, X, state, forward_kwargs), y)

    # Forward-mode products have no sparse kernels: a sparse batch is densified
    # here (one batch, never the whole matrix).
    X = _dense(X)
    primal = {n: p.detach() for n, p in zip(names, params)}
    with _statistics_untracked(module):
        _, directional = jvp(sample_losses, (primal,), (dict(zip(names, tangent)),))
    return lr * directional.detach()


def jvp_step(module, loss_fn, X, y, X_clean, y_clean, *, lr=1.0,
             forward_kwargs=None, clean_weights=None, clean_share=0.0, normalize=None):
    """L2RW step with :func:`jvp_meta_gradients`, then the weighted backward.

    Parameters and return value are those of :func:`reference_step`.
    """
    meta = jvp_meta_gradients(module, loss_fn, X, y, X_clean, y_clean, lr=lr,
                              forward_kwargs=forward_kwargs, clean_weights=clean_weights)
    weights = (normalize or normalize_weights)(meta)
    y_pred = call_module(module, X, forward_kwargs=forward_kwargs)
    loss = _update_backward(module, loss_fn, loss_fn(y_pred, y), weights, X_clean,
                            y_clean, clean_weights=clean_weights, clean_share=clean_share,
                            forward_kwargs=forward_kwargs)
    return StepResult(loss, _detach(y_pred), weights, meta)
