"""Mini-batches: the fast in-memory path, row indices for the weight record, clean batches.

skorch's default route builds every batch by calling ``Dataset.__getitem__`` once per
row and collating the rows, about a millisecond per batch of tabular data. For arrays
that are already in memory, :class:`TensorBatches` slices whole batches out of one
tensor that sits on the training device instead.

Training batches carry the positions of their rows in ``X`` (``((X_batch, index),
y_batch)``) so that every row's weight can be recorded; :class:`IndexedDataset` does
the same for any ``torch`` dataset on skorch's own route.

A scipy sparse ``X`` stays a host CSR matrix (:class:`SparseRows`): each batch is
sliced from it and reaches the module as a ``torch`` sparse COO tensor, as skorch's
``to_tensor(..., accept_sparse=True)`` makes them, so the matrix is never densified.
"""

import dataclasses
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

from sk_l2rw.distributed import ShardedBatches, shard_bounds

__all__ = ["CleanBatches", "IndexedDataset", "SparseRows", "TensorBatches", "host_sliced",
           "n_rows", "sparse_tensor", "take_rows"]


def n_rows(X):
    """Rows of an array, a tensor, a sparse matrix, or a dict of them (skorch's
    multi-input X)."""
    if isinstance(X, Mapping):
        return n_rows(next(iter(X.values())))
    if sp.issparse(X):
        return X.shape[0]
    return len(X)


def take_rows(X, index):
    """``X[index]`` for an array or tensor, or for every value of a dict."""
    if isinstance(X, Mapping):
        return {key: value[index] for key, value in X.items()}
    return X[index]


def sparse_tensor(matrix, dtype, device):
    """A scipy sparse matrix as a coalesced torch sparse COO tensor on ``device``.

    Parameters
    ----------
    matrix : scipy.sparse matrix or array of shape (n, d)
    dtype : torch.dtype
    device : str or torch.device

    Returns
    -------
    torch.Tensor
        Layout ``torch.sparse_coo``, shape ``(n, d)``.
    """
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(np.asarray(coo.data)).to(dtype)
    # COO from CSR rows with sorted indices and no duplicates is already coalesced.
    canonical = sp.isspmatrix_csr(matrix) or isinstance(matrix, sp.csr_array)
    canonical = canonical and matrix.has_canonical_format
    # The indices come from a validated scipy matrix: torch's checks would only
    # repeat scipy's.
    tensor = torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=False,
                                     is_coalesced=True if canonical else None)
    tensor = tensor if canonical else tensor.coalesce()
    if torch.device(device).type != "cuda":
        return tensor.to(device)
    # From pinned memory the copies need not wait: a pageable copy is a host
    # synchronisation, two per batch (measured on an H200: 4 per step with a clean
    # batch). torch keeps the pinned block alive until its copy is done.
    indices, values = (t.pin_memory().to(device, non_blocking=True)
                       for t in (tensor.indices(), tensor.values()))
    return torch.sparse_coo_tensor(indices, values, tensor.shape, check_invariants=False,
                                   is_coalesced=True)


class SparseRows:
    """A host CSR matrix whose row batches come out as sparse tensors on a device.

    Indexing (a slice, or integer positions as an array or tensor) slices the
    matrix on the host, where CSR row slicing costs in proportion to the rows'
    non-zeros, and converts only those rows (:func:`sparse_tensor`): about 1 ms
    for 256 rows of a 100,000 x 20,000 matrix at 0.5% density, where
    ``index_select`` on a torch COO tensor of the whole matrix takes 28 ms.

    Parameters
    ----------
    matrix : scipy.sparse matrix
        Converted to CSR with canonical indices once.
    dtype : torch.dtype
    device : str or torch.device
    """

    def __init__(self, matrix, dtype, device):
        matrix = sp.csr_matrix(matrix)
        if not matrix.has_canonical_format:
            matrix = matrix.copy()
            matrix.sum_duplicates()
        self.matrix = matrix
        self.dtype = dtype
        self.device = torch.device(device)

    @property
    def shape(self):
        return self.matrix.shape

    def __len__(self):
        return self.matrix.shape[0]

    def __getitem__(self, index):
        if torch.is_tensor(index):
            index = index.cpu().numpy()
        return sparse_tensor(self.matrix[index], self.dtype, self.device)


def host_sliced(X):
    """Whether ``X`` (or any value of a dict X) is sliced on the host."""
    parts = X.values() if isinstance(X, Mapping) else (X,)
    return any(isinstance(part, SparseRows) for part in parts)


def _device_of(X):
    return next(iter(X.values())).device if isinstance(X, Mapping) else X.device


class CleanBatches:
    """Endless clean mini-batches of row indices.

    Rows are drawn without replacement within a batch and every clean row is used
    once per pass over the clean set (a batch that straddles two passes takes the
    end of one and rows of the next that it does not already hold).

    Parameters
    ----------
    n_clean : int
        Number of clean rows.
    batch_size : int
        Rows per batch, at most ``n_clean``.
    random_state : None, int or numpy.random.RandomState
    """

    def __init__(self, n_clean, batch_size, random_state=None):
        if not 1 <= batch_size <= n_clean:
            raise ValueError(
                f"clean batch size must be in [1, {n_clean}], got {batch_size}")
        self.n_clean = n_clean
        self.batch_size = batch_size
        self._rng = check_random_state(random_state)
        self._pool = np.empty(0, dtype=np.int64)

    def take(self, n_batches):
        """Indices of the next ``n_batches`` clean batches.

        Returns
        -------
        indices : numpy.ndarray of shape (n_batches, batch_size), dtype int64
        """
        out = np.empty((n_batches, self.batch_size), dtype=np.int64)
        for b in range(n_batches):
            if len(self._pool) < self.batch_size:
                rest = self._pool
                fresh = self._rng.permutation(self.n_clean)
                fresh = fresh[~np.isin(fresh, rest)]
                need = self.batch_size - len(rest)
                out[b] = np.concatenate([rest, fresh[:need]])
                # The rows of `rest` complete this pass; the new pass is
                # fresh[:need] (used now), fresh[need:] and then `rest`.
                self._pool = np.concatenate([fresh[need:], rest])
            else:
                out[b] = self._pool[:self.batch_size]
                self._pool = self._pool[self.batch_size:]
        return out


class IndexedDataset(torch.utils.data.Dataset):
    """Wrap a dataset so that each item is ``((X_i, position_i), y_i)``.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Items are ``(X_i, y_i)``, as skorch's ``Dataset`` yields them.
    positions : sequence of int or None
        Only these items of ``dataset``, in this order (a training split); the
        position reported is the item's index in ``dataset``.
    """

    def __init__(self, dataset, positions=None):
        self.dataset = dataset
        self.positions = positions

    def __len__(self):
        return len(self.dataset if self.positions is None else self.positions)

    def __getitem__(self, i):
        position = i if self.positions is None else int(self.positions[i])
        Xi, yi = self.dataset[position]
        return (Xi, position), yi


# eq and repr off: comparing or printing whole tensors is never what a caller wants.
@dataclasses.dataclass(eq=False, repr=False)
class TensorBatches:
    """Batches sliced from in-memory tensors, re-iterable once per epoch.

    Parameters
    ----------
    X : torch.Tensor or dict of str to torch.Tensor
    y : torch.Tensor or None
        ``None`` for prediction.
    batch_size : int
    shuffle : bool
        A new permutation of the rows every epoch.
    with_index : bool
        Training batches: yield ``((X_batch, index), y_batch)``.
    random_state : None or numpy.random.RandomState
        Source of the permutations.
    shard : tuple of (int, int) or None
        ``(rank, world)`` of a data-parallel fit: each batch is this rank's rows of
        the global batch (:func:`sk_l2rw.distributed.shard_bounds`), and only
        those rows are read.
    """

    X: object
    y: object
    batch_size: int
    _: dataclasses.KW_ONLY
    shuffle: bool = False
    with_index: bool = False
    random_state: object = None
    shard: tuple | None = None

    def __len__(self):
        return -(-n_rows(self.X) // self.batch_size)

    def __iter__(self):
        n, device = n_rows(self.X), _device_of(self.X)
        if self.shuffle:
            rng = check_random_state(self.random_state)
            host_order = rng.permutation(n)
            # One host-to-device copy per epoch, not per batch.
            order = torch.as_tensor(host_order).to(device)
        else:
            order = None
        # Sparse rows are sliced on the host: from host positions, so that no
        # batch copies its positions back from the device (a wait on a GPU).
        on_host = host_sliced(self.X)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.shard is not None:
                lo, hi = shard_bounds(stop - start, *self.shard)
                start, stop = start + lo, start + hi
            if order is None:
                Xb = take_rows(self.X, slice(start, stop))
                yb = None if self.y is None else self.y[start:stop]
                index = torch.arange(start, stop, device=device) if self.with_index else None
            else:
                index = order[start:stop]
                Xb = take_rows(self.X, host_order[start:stop] if on_host else index)
                yb = None if self.y is None else self.y[index]
            if self.with_index:
                yield (Xb, index), yb
            else:
                yield Xb, yb


def sampled_loader(dataset, iterator, kwargs, *, random_state, group, seed):
    """Training batches through torch's DataLoader in the order the in-memory
    path draws (this rank's shard of them in a data-parallel fit).

    ``iterator``, ``kwargs``: the estimator's ``iterator_train`` and its
    parameters; ``random_state``: the fit's generator; ``group``: the fit's
    :class:`sk_l2rw.distributed.Group` or None; ``seed``: the seed of the
    loader's own generator, or None for an unseeded fit.
    """
    own_order = (iterator is not DataLoader or "sampler" in kwargs
                 or "batch_sampler" in kwargs or kwargs.get("drop_last"))
    if own_order:
        if group is not None:
            raise ValueError(
                "a data-parallel fit shards its batches with a batch sampler of "
                f"torch's DataLoader; iterator_train={iterator!r} with "
                f"{sorted(set(kwargs) - {'shuffle', 'batch_size'})} cannot take one")
        return iterator(dataset, **kwargs)
    kwargs = dict(kwargs)
    sampler = ShardedBatches(len(dataset), kwargs.pop("batch_size"),
                             shuffle=bool(kwargs.pop("shuffle")),
                             random_state=random_state,
                             rank=0 if group is None else group.rank,
                             world=1 if group is None else group.world)
    kwargs.pop("drop_last", None)  # False here; a batch sampler refuses the key
    if "generator" not in kwargs and seed is not None:
        # Each epoch's iterator draws its workers' base seed from this
        # generator; from torch's global one, it would shift the random numbers
        # (dropout) the steps draw after it, which the in-memory path does not.
        kwargs["generator"] = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_sampler=sampler, **kwargs)


def _in_memory(X):
    """Arrays or tensors (or a dict of them) that batches can be sliced from."""
    if isinstance(X, Mapping):
        return bool(X) and all(isinstance(v, (np.ndarray, torch.Tensor)) for v in X.values())
    return isinstance(X, (np.ndarray, torch.Tensor)) or sp.issparse(X)


def sliceable(dataset):
    """Whether training batches can be sliced from ``dataset`` directly
    (:class:`TensorBatches`): a skorch ``Dataset`` of in-memory arrays, alone or
    as a whole :class:`IndexedDataset`; else torch's DataLoader reads it."""
    indexed = isinstance(dataset, IndexedDataset)
    inner = dataset.dataset if indexed else dataset
    return (type(inner) is Dataset
            and not (indexed and dataset.positions is not None)
            and _in_memory(inner.X)
            and (inner.y is None or isinstance(inner.y, (np.ndarray, torch.Tensor))))
