"""The L2RW training loop as a mixin over skorch's ``NeuralNet``.

Everything here is independent of the kind of target; :mod:`sk_l2rw.classifier`
adds labels. The mixin only wires together the pure pieces: input checks
(:mod:`sk_l2rw.validation`), batches (:mod:`sk_l2rw.data`), one training step
(:mod:`sk_l2rw.dispatch` over :mod:`sk_l2rw.meta_gradient` and :mod:`sk_l2rw.ghost`),
weights (:mod:`sk_l2rw.weights`) and monitoring (:mod:`sk_l2rw.callbacks`). It
overrides skorch's extension points (``initialize_*``, ``get_iterator``,
``get_split_datasets``, ``train_step_single``, ``get_loss``, ``on_epoch_*``,
``_default_callbacks``), never ``fit_loop``.
"""

import functools
import warnings
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from skorch.callbacks import Checkpoint, PrintLog, ProgressBar, TrainEndCheckpoint
from skorch.dataset import unpack_data
from skorch.net import NeuralNet
from skorch.utils import to_tensor
from sklearn.utils import check_random_state
from torch.utils.data import DataLoader, Subset

from sk_l2rw.callbacks import (  # noqa: F401 (clean_loss_alarm: public here before)
    CLEAN_LOSS_RISE,
    CleanLoss,
    CleanLossAlarm,
    FiniteLoss,
    MonitoringMixin,
    WeightStats,
    clean_loss_alarm,
)
from sk_l2rw.data import (
    CleanBatches,
    IndexedDataset,
    SparseRows,
    TensorBatches,
    host_sliced,
    sampled_loader,
    sliceable,
    n_rows,
    take_rows,
)
from sk_l2rw.dispatch import Computation, choose_meta_gradient  # noqa: F401
from sk_l2rw.distributed import (agreed, current_group, notify_ranks,
                                  shared_seed)
from sk_l2rw.persistence import (  # noqa: F401 (WEIGHT_RECORD_SUFFIX: public here before)
    WEIGHT_RECORD_SUFFIX,
    PersistenceMixin,
    check_checkpoint_folders,
    unchanged_on_error,
)
from sk_l2rw.runtime import (  # noqa: F401 (resolve_device: public here before)
    derived_seed,
    device_resolved,
    module_dtype,
    resolve_device,
    seed_of,
    seeded,
)
from sk_l2rw.modules import sized_kwargs
from sk_l2rw.trusted import trusted_as_clean_set
from sk_l2rw.validation import (
    PARAMETER_CONSTRAINTS,
    check_module,
    input_width,
    sizes_from_data,
    validate_fit,
    validate_predict,
)
from sk_l2rw.weights import effective_sample_shares


class _Run:
    """Device-side state of one ``fit``/``partial_fit`` call.

    Weights and statistics accumulate in device tensors and reach the host once
    per epoch, so a CUDA training step never waits for the host.
    """

    def __init__(self, net, data, computation, group=None):
        device, dtype = net.device_, net._module_dtype()
        self.computation = computation
        self.layout = data.layout
        # A data-parallel fit's ranks (sk_l2rw.distributed), or None.
        self.group = group
        # There: an exception a callback raised on this rank, held until the next
        # collective (L2RWMixin.notify).
        self.failure = None
        # Seeded fits re-seed this generator at every epoch (on_epoch_begin).
        self.rng = (np.random.RandomState() if net._seed_ is not None
                    else check_random_state(None))
        self.n_samples = n_rows(data.X)
        self.batches_per_epoch = _batches_per_epoch(net, self.n_samples)
        if data.y is None:  # a torch Dataset: skorch's DataLoader route
            self.X = self.y = None
        else:
            self.X = _to_device(data.X, dtype, device)
            self.y = net._target_tensor(data.y, device)
        self.X_clean = self.y_clean = self.w_clean = None
        self.clean_batches = None
        self.clean_share = 0.0
        if data.X_clean is not None:
            self.X_clean = _to_device(data.X_clean, dtype, device, fit=False)
            self.y_clean = net._target_tensor(data.y_clean, device)
            size = net.clean_batch_size or net.batch_size
            size = len(data.y_clean) if size in (-1, None) else size
            size = min(size, len(data.y_clean))
            if size < len(data.y_clean):
                self.clean_batches = CleanBatches(len(data.y_clean), size, self.rng)
            if data.w_clean is not None:
                # v_j = c_j / m: the clean loss sum_j v_j f_j is a weighted mean.
                self.w_clean = torch.as_tensor(data.w_clean / size, dtype=dtype).to(device)
            if net.train_on_clean:
                # Each clean row counts, over an epoch, as much as one average
                # training row (see train_on_clean in L2RWClassifier's docstring).
                self.clean_share = len(data.y_clean) / max(self.n_samples, 1)
                if group is not None and group.rank != 0:
                    # The clean rows are the same on every rank: one rank adds
                    # their share to the summed gradient.
                    self.clean_share = 0.0
        self._clean_index = self._clean_host = None
        self._clean_pos = 0
        self._clean_all = None
        self.weights = None
        self.epoch_open = False

    def restart_clean(self):
        """Start a new pass over the clean set (each epoch, for resumable runs)."""
        if self.clean_batches is not None:
            self.clean_batches = CleanBatches(self.clean_batches.n_clean,
                                              self.clean_batches.batch_size, self.rng)
        self._clean_index = None

    def next_clean(self):
        """The clean batch for the next training step: rows, targets, row weights
        (None when every clean row counts the same)."""
        if self.clean_batches is None:
            if self._clean_all is None:  # a sparse clean set: converted once
                self._clean_all = (take_rows(self.X_clean, slice(None))
                                   if isinstance(self.X_clean, SparseRows) else self.X_clean)
            return self._clean_all, self.y_clean, self.w_clean
        if self._clean_index is None or self._clean_pos >= len(self._clean_index):
            # A whole epoch of indices in one host-to-device copy.
            idx = self.clean_batches.take(max(self.batches_per_epoch, 1))
            self._clean_index = torch.as_tensor(idx).to(self.y_clean.device)
            # Sparse clean rows are sliced on the host, from the host copy: no
            # step copies its positions back from the device (a wait on a GPU).
            self._clean_host = idx
            self._clean_pos = 0
        index = self._clean_index[self._clean_pos]
        rows = self._clean_host[self._clean_pos] if host_sliced(self.X_clean) else index
        self._clean_pos += 1
        w = None if self.w_clean is None else self.w_clean[index]
        return take_rows(self.X_clean, rows), self.y_clean[index], w

    def begin_epoch(self, net):
        """Re-seed for the epoch (a seeded fit: from the seed and the epoch's
        number) and start its weight record."""
        if net._seed_ is not None:
            seed = net._derived_seed(1, len(net.history))
            self.rng.seed(seed % 2 ** 32)
            torch.manual_seed(seed)
            self.restart_clean()
        self.start_epoch(net._module_dtype(), net.device_)

    def start_epoch(self, dtype, device):
        self.weights = torch.full((self.n_samples,), float("nan"), dtype=dtype,
                                  device=device)
        self.zeros = torch.zeros((), dtype=torch.int64, device=device)
        self.ess = torch.zeros((), dtype=dtype, device=device)
        self.rows = 0
        # The epoch's row positions in training order, and the batch sizes: what
        # close_epoch needs for the per-batch statistics.
        self._order = torch.empty(self.n_samples, dtype=torch.int64, device=device)
        self._sizes = []
        self.epoch_open = True

    def record(self, index, weights):
        """Write one step's weights into ``weights`` (and its row positions into the
        epoch's order): two tensor operations, and nothing of the step is kept, so
        that memory does not grow with the number of steps."""
        n = weights.shape[0]
        self.weights[index] = weights.to(self.weights.dtype)
        self._order[self.rows:self.rows + n] = index
        self._sizes.append(n)
        self.rows += n

    @property
    def batches(self):
        """Steps recorded in this epoch."""
        return len(self._sizes)

    def close_epoch(self):
        """Sum the epoch's weight statistics and bring them to the host with the
        weights, in one copy: one wait for the device per epoch, not three.

        Returns
        -------
        numpy.ndarray of shape (n_samples,), float64
            The epoch's weights. ``zeros`` and ``ess`` become Python numbers.
        """
        self.epoch_open = False
        if self._sizes:
            weights = self.weights[self._order[:self.rows]]
            self.zeros = (weights == 0).sum()
            self.ess = effective_sample_shares(weights, self._sizes).sum()
        host = torch.cat([self.weights.double(), self.zeros.double().reshape(1),
                          self.ess.double().reshape(1)]).cpu().numpy()
        # float64 holds the count exactly (below 2**53 rows) and ess's value as is.
        self.zeros, self.ess = int(host[-2]), float(host[-1])
        return host[:-2]

    def epoch_record(self):
        """:meth:`close_epoch`'s weights; for ``fit(..., trusted=mask)``, a column
        per row of X (NaN for the trusted rows)."""
        weights = self.close_epoch()
        if self.layout is not None:
            positions, total = self.layout
            weights, trained = np.full(total, np.nan), weights
            weights[positions] = trained
        return weights


def _batches_per_epoch(net, n_samples):
    batch_size = net.get_params_for("iterator_train").get("batch_size",
                                                          net.batch_size)
    if batch_size in (-1, None):
        return 1
    return -(-n_samples // batch_size)


def _tensor_batches(net, dataset, batch_size, shuffle, run):
    """Batches sliced from an in-memory ``dataset`` (:func:`~sk_l2rw.data.sliceable`):
    from the fit's device copy when it is the training set, else moved now."""
    indexed = isinstance(dataset, IndexedDataset)
    inner = dataset.dataset if indexed else dataset
    group = None if run is None else run.group
    if run is not None and indexed and run.X is not None:
        X, y = run.X, run.y
    else:
        X = _to_device(inner.X, net._module_dtype(), net.device_)
        device = next(iter(X.values())).device if isinstance(X, Mapping) else X.device
        y = None if inner.y is None else torch.as_tensor(inner.y).to(device)
    return TensorBatches(X, y, batch_size, shuffle=shuffle, with_index=indexed,
                         random_state=run.rng if run is not None else None,
                         shard=None if group is None else (group.rank, group.world))


def _to_device(X, dtype, device, fit=True):
    """An array, or every value of a dict, as a tensor on ``device``: floating values
    in ``dtype``, integer codes as they are; a sparse matrix stays on the host and
    gives sparse batches on ``device`` (:class:`~sk_l2rw.data.SparseRows`).
    ``fit=False``: always onto the device (a clean set is small)."""
    if isinstance(X, Mapping):
        return {key: _to_device(value, dtype, device, fit) for key, value in X.items()}
    if sp.issparse(X):
        return SparseRows(X, dtype, device)
    if not fit:
        X = _as_tensor(X)
        return (X.to(dtype) if X.is_floating_point() else X).to(device)
    return _as_device_tensor(X, dtype, device)


def _as_tensor(X):
    with warnings.catch_warnings():
        # Read-only arrays (pandas 3 hands them out) are only ever read here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(X)


def _as_device_tensor(X, dtype, device):
    X = _as_tensor(X)
    if X.dtype != dtype and X.is_floating_point():
        X = X.to(dtype)
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        if X.numel() * X.element_size() > free // 2:
            return X  # too big for the device: batches move one by one
    return X.to(device)


class L2RWMixin(PersistenceMixin, MonitoringMixin):
    """Meta-reweighted training for a skorch ``NeuralNet`` (see L2RWClassifier)."""

    def __init__(self, module, clean_X=None, clean_y=None, *, meta_gradient="auto",
                 clean_batch_size=None, train_on_clean=False,
                 categorical_features="from_dtype", random_state=None, device="auto",
                 train_split=None, **kwargs):
        # One signature for both estimators (skorch reads the parameters back from
        # the instance); ``criterion`` keeps the skorch class's own default.
        super().__init__(module, train_split=train_split, device=device, **kwargs)
        self.clean_X = clean_X
        self.clean_y = clean_y
        self.meta_gradient = meta_gradient
        self.clean_batch_size = clean_batch_size
        self.train_on_clean = train_on_clean
        self.categorical_features = categorical_features
        self.random_state = random_state

    # ------------------------------------------------------------------ fit API

    #: ``trusted`` is routed to fit by default (metadata routing), as ``groups`` is
    #: to a group splitter: a mask passed to a Pipeline or a search is meant for us.
    __metadata_request__fit = {"trusted": True}
    __metadata_request__partial_fit = {"trusted": True}

    def fit(self, X, y, *, X_val=None, y_val=None, trusted=None, **fit_params):
        """Initialize the module and train it with L2RW.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...), DataFrame or torch.Tensor
            Training rows (may be noisy or imbalanced).
        y : array-like of shape (n_samples,)
        X_val, y_val : array-like, optional
            The clean set. Takes precedence over ``clean_X``/``clean_y`` given to the
            constructor; this is the route a Pipeline can transform
            (``Pipeline(..., transform_input=["X_val"])``).
        trusted : array-like of bool, shape (n_samples,), optional
            The clean set as rows of X: True where a row's label is trusted. The
            same fit as ``fit(X[~trusted], y[~trusted], X_val=X[trusted],
            y_val=y[trusted])``, except that ``sample_weights_`` has a column for
            every row of X (NaN for the trusted rows: they decide the weights
            rather than receive them). Being one value per row, the mask is sliced
            with every fold of a search and reaches this estimator through a
            Pipeline (metadata routing; see
            :class:`sk_l2rw.model_selection.TrustedKFold`). Not with X_val/y_val.
        **fit_params : dict
            Passed to the module's ``forward``, as in skorch.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            A bad parameter (skorch's included) or input, named, before anything
            changes.
        FloatingPointError
            Training diverged (the loss is no longer finite).

        Notes
        -----
        All or nothing: when the call raises, for any reason (the above, or an
        exception from the module's ``forward`` or from a callback in the middle of
        training), the estimator is left exactly as it was before the call: module
        parameters, optimizer state, history, ``sample_weights_`` and every fitted
        attribute. A ``KeyboardInterrupt`` during training is not an error: as in
        skorch, the call returns and keeps the completed epochs.
        """
        with unchanged_on_error(self) as before, agreed():
            X, y, X_val, y_val, layout = trusted_as_clean_set(X, y, X_val, y_val, trusted)
            data = validate_fit(self, X, y, X_val, y_val, reset=True)._replace(
                layout=layout)
            self._features_seen = input_width(self, data.X)
            if not self.warm_start or not self.initialized_:
                self.initialize()
            check_checkpoint_folders(self)
            with self._seeded(2):  # LazyLinear & co. materialise in the dry run
                check_module(self, data, _to_device)
        return self._train(data, before, _routing_method="fit", **fit_params)

    def partial_fit(self, X, y=None, classes=None, *, X_val=None, y_val=None,
                    trusted=None, **fit_params):
        """Continue training (or start, if the estimator is not initialized).

        Appends to ``sample_weights_`` and the history. Parameters as in
        :meth:`fit`; ``classes`` is accepted for scikit-learn compatibility.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError, FloatingPointError
            As :meth:`fit`; also rows of another shape than the first fit's.

        Notes
        -----
        All or nothing, as :meth:`fit`: a call that raises leaves the estimator as
        it was before the call; a ``KeyboardInterrupt`` during training keeps the
        epochs the call completed.
        """
        with unchanged_on_error(self) as before, agreed():
            # A net initialized by hand (e.g. to load_params) has seen no data yet.
            reset = not (self.initialized_ and hasattr(self, "n_features_in_"))
            X, y, X_val, y_val, layout = trusted_as_clean_set(X, y, X_val, y_val, trusted)
            data = validate_fit(self, X, y, X_val, y_val, reset=reset)._replace(
                layout=layout)
            if reset:
                self._features_seen = input_width(self, data.X)
            if not self.initialized_:
                self.initialize()
            check_checkpoint_folders(self)
            with self._seeded(2):  # LazyLinear & co. materialise in the dry run
                check_module(self, data, _to_device)
        return self._train(data, before, _routing_method="partial_fit", **fit_params)

    def _check_output(self, out):
        """Subclasses check the module's output width against the targets."""

    def _train(self, data, before, /, **fit_params):
        """Train on validated ``data``; on an exception, restore ``before`` (the
        :class:`Snapshot` taken when the call started) and re-raise.

        A KeyboardInterrupt is not an error here: skorch ends training on it and
        keeps the completed epochs, and so does this.
        """
        try:
            return self._train_validated(data, **fit_params)
        except Exception:
            before.restore()
            raise

    def _train_validated(self, data, **fit_params):
        computation = Computation(
            self.module_, self.meta_gradient, has_clean=data.X_clean is not None,
            compile_kwargs=self.get_params_for("compile") if self.compile else None)
        self.meta_gradient_ = computation.method
        group = current_group()
        if group is not None:
            # Collectives start only here, after every rank has validated (agreed):
            # the ranks must draw the same batches (rank 0's seed for all), and a
            # module instance, or a warm start, may differ between ranks.
            self._seed_ = shared_seed(group, self._seed_)
            group.broadcast_module(self.module_)
        self._run_ = _Run(self, data, computation, group)
        try:
            # skorch's callbacks read ``net.device`` (cached predictions for
            # scoring): the resolved device stands in for "auto" while training.
            with self._device_resolved(), self._seeded():
                NeuralNet.partial_fit(self, data.X, data.y, **fit_params)
        finally:
            self._run_ = None
        return self

    # ------------------------------------------------------------- validation

    #: Parameter name -> validator (:data:`sk_l2rw.validation.PARAMETER_CONSTRAINTS`),
    #: checked at every fit before anything else.
    _parameter_constraints = PARAMETER_CONSTRAINTS

    def _clean_row_weights(self, y_clean):
        """Per-row weights of the clean set (mean 1), or None: all count the same.
        The classifier derives them from ``clean_class_weight``."""
        return None

    def _validate_predict(self, X):
        return validate_predict(self, X)

    # ------------------------------------------- dtype, seeds, device (sk_l2rw.runtime)

    def _module_dtype(self):
        return module_dtype(self)

    def _derived_seed(self, *key):
        return derived_seed(self._seed_, *key)

    def _seeded(self, *key):
        return seeded(self, *key)

    def _device_resolved(self):
        return device_resolved(self)

    # ------------------------------------------------------ skorch extension points

    def initialize(self):
        """Resolve the device and random state, then initialize as skorch does."""
        self.device_ = resolve_device(self.device)
        self._seed_ = seed_of(self.random_state)
        with self._device_resolved(), self._seeded(0):
            super().initialize()
        return self

    def initialize_module(self):
        """Initialize the module, sizing it from the data where it asks for that.

        A module class whose constructor has ``n_features``, ``n_outputs`` or
        ``softmax`` defaulting to None (such as :class:`sk_l2rw.modules.MLP`) gets
        them from the data seen by ``fit`` unless they are given as ``module__*``.
        """
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type):
            kwargs = sized_kwargs(self.module, kwargs, sizes_from_data(self))
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def _module_sizes(self):
        """Subclasses: the output sizes a module may take from the targets."""
        return {}

    def torch_compile(self, module, name):
        """Leave ``module_`` and ``criterion_`` as they are: ``compile=True``
        compiles the L2RW step instead.

        The step reads every layer's inputs and output gradients, which a compiled
        module hides inside its graph; compiled as a whole
        (:func:`sk_l2rw.ghost.compiled_ghost_step`), it is one graph from the forward
        to the weighted update. Prediction runs the module eagerly. ``compile__*``
        parameters go to ``torch.compile``.

        Parameters
        ----------
        module : torch.nn.Module
        name : str

        Returns
        -------
        torch.nn.Module
            ``module`` itself.
        """
        return module

    def initialize_criterion(self):
        """Initialize the criterion with per-example losses (``reduction='none'``)."""
        super().initialize_criterion()
        if not hasattr(self.criterion_, "reduction"):
            raise TypeError(
                f"the criterion {type(self.criterion_).__name__} has no 'reduction' "
                "attribute; L2RW needs per-example losses (reduction='none')")
        self.criterion_.reduction = "none"
        return self

    def initialize_history(self):
        """Reset the history and the weight record together."""
        super().initialize_history()
        self._weight_rows_ = []
        return self

    def get_sample_losses(self, y_pred, y_true, X=None, training=False):
        """Per-example losses from the criterion (``reduction='none'``).

        Parameters
        ----------
        y_pred : torch.Tensor
            Module output.
        y_true : torch.Tensor or array-like
        X : unused, as in skorch.
        training : bool

        Returns
        -------
        torch.Tensor of shape (n,)
        """
        y_true = to_tensor(y_true, device=self.device_)
        if isinstance(y_pred, tuple):
            y_pred = y_pred[0]
        losses = self.criterion_(y_pred, y_true)
        if losses.dim() > 1:  # e.g. several outputs per row: one loss per row
            losses = losses.reshape(losses.shape[0], -1).mean(1)
        return losses

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Mean of :meth:`get_sample_losses`: what skorch's scoring expects."""
        return self.get_sample_losses(y_pred, y_true, X=X, training=training).mean()

    def infer(self, x, **fit_params):
        """Forward ``x`` through the module on the resolved device.

        Unlike skorch's, this never reads ``self.device`` (which may be "auto"), so
        several threads can predict with one fitted estimator at once.
        """
        x = to_tensor(x, device=self.device_)
        if isinstance(x, Mapping):
            return self.module_(**self._merge_x_and_fit_params(x, fit_params))
        return self.module_(x, **fit_params)

    def forward_iter(self, X, training=False, device="cpu"):
        """As skorch's, with ``device="auto"`` meaning the training device."""
        if device == "auto":
            device = self.device_
        return super().forward_iter(X, training=training, device=device)

    def get_split_datasets(self, X, y=None, **fit_params):
        """Split as skorch does; training batches also carry their row positions."""
        dataset = self.get_dataset(X, y)
        if not self.train_split:
            return IndexedDataset(dataset), None
        if y is None:
            train, valid = self.train_split(dataset, **fit_params)
        else:
            train, valid = self.train_split(dataset, y, **fit_params)
        if isinstance(train, Subset) and train.dataset is dataset:
            return IndexedDataset(dataset, positions=train.indices), valid
        return IndexedDataset(train), valid

    def get_iterator(self, dataset, training=False):
        """Slice in-memory arrays directly; skorch's DataLoader for everything else.

        Training batches are shuffled unless ``iterator_train__shuffle=False``.
        Every training route draws the same batches for one ``random_state``: the
        in-memory path (:class:`~sk_l2rw.data.TensorBatches`) and the DataLoader
        (a torch ``Dataset``, a validation split), alone or data-parallel, take one
        permutation per epoch from the fit's generator
        (:class:`~sk_l2rw.distributed.ShardedBatches` as the DataLoader's batch
        sampler). A ``sampler``, ``batch_sampler`` or ``drop_last=True`` given as
        ``iterator_train__*``, or another ``iterator_train``, keeps its own order.
        """
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        iterator = self.iterator_train if training else self.iterator_valid
        if training:
            kwargs.setdefault("shuffle", True)
        batch_size = kwargs.setdefault("batch_size", self.batch_size)
        if batch_size == -1:
            kwargs["batch_size"] = batch_size = len(dataset)
        fast = (iterator is DataLoader and set(kwargs) <= {"shuffle", "batch_size"}
                and sliceable(dataset))
        run = getattr(self, "_run_", None) if training else None
        if run is not None and not fast:
            return sampled_loader(
                dataset, iterator, kwargs, random_state=run.rng, group=run.group,
                seed=None if self._seed_ is None else self._derived_seed(3))
        if not fast:
            return iterator(dataset, **kwargs)
        return _tensor_batches(self, dataset, batch_size, bool(kwargs.get("shuffle")), run)

    def train_step_single(self, batch, **fit_params):
        """One L2RW step: weights from the clean batch, gradient of the weighted loss.

        Leaves the gradient of ``sum_i w_i f_i`` in the module's parameters for the
        optimizer, and records the weights on the device.
        """
        self._set_training(True)
        (Xi, index), yi = unpack_data(batch)
        device = self.device_
        Xi = to_tensor(Xi, device=device)
        yi = to_tensor(yi, device=device)
        index = to_tensor(index, device=device)
        run = self._run_
        if run.group is not None and run.failure is not None:
            self._begin_parallel_step(run)  # a callback raised here: tell the others
            run.group.fail(run.failure)
        X_clean, y_clean, w_clean = ((None, None, None) if run.X_clean is None
                                     else run.next_clean())
        lr = float(self.optimizer_.param_groups[0]["lr"])
        computation = run.computation
        step = functools.partial(
            computation.step, self.module_, self._loss_fn, Xi, yi, X_clean, y_clean,
            zero_grad=self._zero_grad_optimizer, lr=lr, forward_kwargs=fit_params,
            clean_weights=w_clean, clean_share=run.clean_share)
        if run.group is None:
            result = step()
            loss = result.loss
            run.record(index, result.weights)
        else:
            loss, result = self._parallel_step(step, index)
        self.meta_gradient_ = computation.method
        return {"loss": loss, "y_pred": result.y_pred}

    def _parallel_step(self, step, index):
        """This rank's share of one data-parallel step (:meth:`Group.run_step
        <sk_l2rw.distributed.Group.run_step>`); the global batch's weights recorded."""
        run = self._run_
        self._begin_parallel_step(run)
        loss, result = run.group.run_step(step, self.module_, index)
        run.record(*run.group.batch)
        run.global_rows = run.group.batch[0].shape[0]
        return loss, result

    def _begin_parallel_step(self, run):
        run.group.begin_step(self.module_, self.batch_size if self.batch_size > 0
                             else run.n_samples, verify=run.computation.verifies_next)

    def _loss_fn(self, y_pred, y):
        return self.get_sample_losses(y_pred, y, training=True)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Start the epoch's weight record."""
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)
        self._run_.begin_epoch(self)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """A data-parallel step counts the rows of the global batch (the epoch's
        ``train_loss`` is averaged over batches by their sizes)."""
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        run = getattr(self, "_run_", None)
        if training and run is not None and run.group is not None:
            self.history.record_batch("train_batch_size", run.global_rows)

    def notify(self, method_name, **cb_kwargs):
        """As skorch's; in a data-parallel fit, only rank 0 runs the callbacks that
        print, write files or warn (:attr:`rank_zero_callbacks`), and an exception
        from a callback stops every rank (:func:`sk_l2rw.distributed.notify_ranks`).
        """
        run = getattr(self, "_run_", None)
        if run is None or run.group is None:
            return super().notify(method_name, **cb_kwargs)
        return notify_ranks(self, run, super().notify, method_name, cb_kwargs)

    #: Callbacks that run on rank 0 alone in a data-parallel fit: they print, write
    #: checkpoints or warn, and every rank has the same numbers.
    rank_zero_callbacks = (PrintLog, ProgressBar, Checkpoint, TrainEndCheckpoint,
                           CleanLossAlarm)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """After an interruption, keep only completed epochs in the history."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        run = getattr(self, "_run_", None)
        if run is not None and run.epoch_open and len(self.history):
            self.history.pop()

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Copy the epoch's weights to the host (the callbacks then read the rest)."""
        super().on_epoch_end(net, dataset_train=dataset_train,
                             dataset_valid=dataset_valid, **kwargs)
        self._weight_rows_.append(self._run_.epoch_record())

    def __sklearn_tags__(self):
        """skorch's tags, with scipy sparse X and categorical columns accepted."""
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.categorical = True
        return tags

    @property
    def _default_callbacks(self):
        """skorch's defaults with L2RW's monitoring (:mod:`sk_l2rw.callbacks`) before
        the log, so that its columns are printed."""
        base = list(super()._default_callbacks)
        ours = [("clean_loss", CleanLoss()), ("weight_stats", WeightStats()),
                ("clean_loss_alarm", CleanLossAlarm()), ("finite_loss", FiniteLoss())]
        at = next((i for i, (name, _) in enumerate(base) if name == "print_log"),
                  len(base))
        return base[:at] + ours + base[at:]
