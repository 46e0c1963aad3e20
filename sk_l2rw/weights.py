"""From meta-gradients to example weights (steps 4 and 5 of the paper's Algorithm 1).

Pure tensor functions: no module, no optimizer, no host-device synchronisation, so
they can run inside a CUDA training step without stalling it.
"""

import torch

__all__ = ["normalize_weights", "effective_sample_share", "effective_sample_shares"]


def normalize_weights(meta_gradients):
    """Clip meta-gradients at zero and normalise them to sum to one.

    ``w_i = max(u_i, 0) / (sum_j max(u_j, 0) + delta)``, where ``delta`` is 1 when the
    clipped sum is exactly 0 and 0 otherwise: a batch in which no example helps the
    clean loss gets all-zero weights instead of a division by zero.

    Parameters
    ----------
    meta_gradients : torch.Tensor of shape (n,)
        ``u_i = -dL_clean(theta'(eps)) / d eps_i`` at ``eps = 0``.

    Returns
    -------
    weights : torch.Tensor of shape (n,)
        Non-negative weights that sum to 1, or all zeros. Detached from any graph;
        NaN meta-gradients count as 0 and +inf as the largest value, so the
        weights are never NaN.
    """
    info = torch.finfo(meta_gradients.dtype)
    clipped = torch.nan_to_num(meta_gradients.detach(), nan=0.0, neginf=0.0,
                               posinf=info.max).clamp_(min=0)
    # Divide by the largest value first, so that the sum cannot overflow; any
    # positive divisor cancels in the second division. Clamping the divisors at
    # the smallest normal number keeps an all-zero batch at 0 without a branch
    # (no .item() on CUDA): 0 / tiny = 0, and a positive total is at least the
    # largest scaled value, far above tiny.
    scaled = clipped / clipped.amax().clamp_(min=info.tiny)
    return scaled / scaled.sum().clamp_(min=info.tiny)


def effective_sample_share(weights):
    """Kish effective sample size of a batch's weights, as a share of the batch.

    ``(sum w)^2 / (sum w^2) / n``: 1 for uniform weights, ``1/n`` when one row takes
    all the weight, 0 for an all-zero batch.

    Parameters
    ----------
    weights : torch.Tensor of shape (n,)

    Returns
    -------
    share : torch.Tensor, scalar
    """
    return _share(weights.sum(), (weights * weights).sum(), weights.numel())


def effective_sample_shares(weights, sizes):
    """:func:`effective_sample_share` of each of several batches at once.

    Parameters
    ----------
    weights : torch.Tensor of shape (n,)
        The weights of consecutive batches, one after the other.
    sizes : sequence of int
        The batches' sizes, summing to ``n``.

    Returns
    -------
    shares : torch.Tensor of shape (len(sizes),)
    """
    sizes = torch.as_tensor(sizes, device=weights.device)
    # output_size: without it, repeat_interleave reads the total from the device.
    batch_of = torch.repeat_interleave(torch.arange(len(sizes), device=weights.device),
                                       sizes, output_size=weights.shape[0])
    sums = torch.zeros(len(sizes), dtype=weights.dtype, device=weights.device)
    squares = torch.zeros_like(sums).index_add_(0, batch_of, weights * weights)
    sums.index_add_(0, batch_of, weights)
    return _share(sums, squares, sizes.to(weights.dtype))


def _share(sums, squares, sizes):
    # An all-zero batch (every meta-gradient negative) has share 0, not NaN.
    safe = squares + (squares == 0).to(squares.dtype)
    return sums ** 2 / safe / sizes
