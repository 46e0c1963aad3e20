"""``L2RWClassifier``: skorch's ``NeuralNetClassifier`` trained by Learning to Reweight."""

import warnings

import numpy as np
import torch
from skorch import NeuralNetClassifier

from sklearn.utils.multiclass import check_classification_targets

from sk_l2rw.net import L2RWMixin
from sk_l2rw.exceptions import EncodedLabelsWarning
from sk_l2rw.validation import (check_clean_class_weight, check_labels,
                                clean_class_weights, codes_for_clean_labels, encode_labels,
                                warn_missing_classes)

__all__ = ["L2RWClassifier"]


class L2RWClassifier(L2RWMixin, NeuralNetClassifier):
    """Neural-network classifier trained with Learning to Reweight Examples.

    A skorch ``NeuralNetClassifier`` whose every training step weights the rows of
    the mini-batch by how much a small step on each would lower the loss on a
    trusted ("clean") set (Ren et al., ICML 2018): ``u_i = alpha <grad f_i,
    grad L_clean>``, clipped at 0 and normalised to sum to 1 over the batch. The
    optimizer then steps on ``sum_i w_i f_i``. Rows whose labels disagree with the
    clean set (noise) get little or no weight; rare classes the clean set cares
    about get more (imbalance).

    Parameters
    ----------
    module : torch.nn.Module class or instance
        As in skorch. With the default ``criterion=torch.nn.NLLLoss`` it must
        output probabilities (softmax); with ``criterion=torch.nn.CrossEntropyLoss``
        it outputs logits and ``predict_proba`` applies the softmax.
    clean_X, clean_y : array-like or None
        The clean set, when it is known at construction. Not transformed by the
        steps of a Pipeline: give it to ``fit`` as ``X_val``/``y_val`` for that.
    meta_gradient : {"auto", "ghost", "jvp", "reference"}, default="auto"
        How the per-row meta-gradients are computed; all are exact.
        ``"reference"`` is the paper's double back-propagation through a
        look-ahead step; ``"jvp"`` one forward-mode product; ``"ghost"`` layer-wise
        dot products (``nn.Linear``, ``nn.Conv1d/2d``, ``nn.Embedding``; no batch
        normalisation). ``"auto"`` takes ghost when it applies, else jvp, else
        reference; ``meta_gradient_`` tells which ran.
    clean_batch_size : int or None, default=None
        Clean rows per training step; None means ``batch_size``. Capped at the
        size of the clean set (then the whole clean set is used every step).
        Drawn without replacement, cycling through the clean set.
    clean_class_weight : None, "balanced" or dict, default=None
        Class weights ``c_k`` on the clean loss that defines the example weights,
        ``L_clean = sum_j c_{y_j} f_j / sum_j c_{y_j}``, with the meaning of
        scikit-learn's ``class_weight``: None, every clean row counts the same (the
        paper); ``"balanced"``, ``n / (K * n_k)`` over the clean labels; a dict
        label -> weight (labels it omits weigh 1). Only the ratios matter. To
        make a clean set with class shares ``q_k`` stand for a population with
        prior ``pi_k`` (e.g. 10 audited rows per class from a table that is 76%
        negative), pass ``{k: pi_k / q_k}``: the weights then optimise the loss
        of that population instead of a balanced one.
    train_on_clean : bool, default=False
        Also train on the clean rows. Each step adds the clean batch to the
        update with a total weight of ``n_clean / n_train``, split over its rows in
        proportion to their class weights, so that over an epoch every clean row
        counts as much as one average training row (the batch weights sum to 1,
        and the clean set is cycled through about ``n_clean`` times per
        ``n_train`` training rows). Weighting each reuse of a clean row as a full
        row would let a small clean set be fitted by heart within a few epochs,
        after which its gradient no longer tells good rows from bad. The weights
        of the training rows are exactly the paper's either way: they are
        computed, and normalised over the training batch, before the clean rows
        join the update.
    categorical_features : "from_dtype", None or list of str, default="from_dtype"
        Columns of a DataFrame ``X`` to embed as categories. "from_dtype":
        columns of ``category``, string or object dtype (one with more than 10,000
        levels is refused as a likely identifier unless named explicitly). A list:
        exactly these columns, whatever their dtype. None: none (non-numeric
        columns are an error). Levels are learned from ``X`` at ``fit``
        (``categories_``); the module is called as ``forward(X=numeric columns,
        categories=codes)`` with int64 codes, 0 for a missing value, 1 for a level
        not seen at fit, ``2 + k`` for level k, which
        :class:`sk_l2rw.modules.MLP` embeds. Arrays are never affected.
    random_state : None, int or numpy.random.RandomState, default=None
        Seeds initial weights, dropout, shuffling and clean batches. With an int,
        two fits give identical ``sample_weights_``.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU (resolved when the
        estimator initializes; the resolved device is ``device_``).
    criterion : torch criterion class, default=torch.nn.NLLLoss
        Must accept ``reduction``; L2RW sets it to ``"none"`` to get per-row losses.
    train_split : callable or None, default=None
        None: every row trains and the clean set is the yardstick.
    **kwargs
        Any other ``NeuralNetClassifier`` parameter (``optimizer``, ``lr``,
        ``max_epochs``, ``batch_size``, ``callbacks``, ``module__*``...).
        Training batches are shuffled unless ``iterator_train__shuffle=False``.
        ``compile=True`` compiles the L2RW step, not the module (the user guide's
        "Compiling the step").

    Attributes
    ----------
    sample_weights_ : numpy.ndarray of shape (n_epochs, n_samples)
        The normalised weight each row received in each epoch; NaN where a row did
        not train (and for the trusted rows of ``fit(X, y, trusted=mask)``, which
        set the weights rather than receive them). Appended to by ``partial_fit``
        and ``warm_start``.
    meta_gradient_ : str
        The computation that ran: "ghost", "jvp", "reference", or "plain" (no
        clean set).
    classes_ : numpy.ndarray
        Class labels, in the order of ``predict_proba``'s columns.
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray
        Only when ``X`` was a DataFrame with string column names.
    categories_ : dict of str to numpy.ndarray
        Only when ``X`` had categorical columns: each column's levels, learned at
        fit (level k is code ``2 + k``).
    history_ : skorch.History
        Per epoch also ``clean_loss`` (mean loss on the whole clean set at the end
        of the epoch, class-weighted when ``clean_class_weight`` is set), ``weight_zero_frac`` (share of rows with weight 0) and
        ``weight_ess`` (effective sample size of each batch's weights as a share
        of the batch, averaged).
    device_ : str
        The device training ran on.

    Warns
    -----
    UserWarning
        At most once per fit, when an epoch's ``clean_loss`` is more than 10 times
        its best so far and above the first epoch's (:func:`sk_l2rw.callbacks.clean_loss_alarm`):
        the weighted steps are too large for this learning rate.
    """

    def __init__(self, module, clean_X=None, clean_y=None, *, clean_class_weight=None,
                 **kwargs):
        # Every other parameter is the regressor's too (L2RWMixin.__init__).
        super().__init__(module, clean_X, clean_y, **kwargs)
        self.clean_class_weight = clean_class_weight

    _parameter_constraints = {**L2RWMixin._parameter_constraints,
                              "clean_class_weight": check_clean_class_weight}

    # ----------------------------------------------------------------- targets

    def _check_targets(self, y, *, name):
        y = check_labels(y, name=name)
        check_classification_targets(y)
        return y

    def _encode_targets(self, y, y_clean, *, reset, where, dataset=None):
        if self.classes is not None and len(self.classes):
            classes = np.asarray(self.classes)
        elif dataset is not None:
            raise ValueError(
                "with a torch Dataset as X, pass classes=[...] to the constructor: the "
                "dataset's targets must be class indices in that order")
        elif reset:
            classes = np.unique(y)
        else:
            classes = self.classes_
        y_enc = None if y is None else encode_labels(y, classes, name="y")
        y_clean_enc = None
        if y_clean is not None:
            codes = codes_for_clean_labels(y_clean, classes)
            if codes is not None:
                warnings.warn(
                    f"the training labels are the codes {classes.tolist()} but the clean "
                    f"labels are {np.unique(y_clean).tolist()}: taken to be those labels "
                    "encoded in sorted order, as VotingClassifier, StackingClassifier, "
                    "BaggingClassifier (LabelEncoder) and a binary OneVsRestClassifier "
                    "encode y. If y was encoded otherwise, encode the clean labels the "
                    "same way", EncodedLabelsWarning, stacklevel=5)
                y_clean = codes
            y_clean_enc = encode_labels(y_clean, classes, name=f"the clean set {where[1]}")
            warn_missing_classes(y_clean, classes)
        if reset:
            self.classes_inferred_ = classes
        return y_enc, y_clean_enc

    def _clean_row_weights(self, y_clean):
        return clean_class_weights(self.clean_class_weight, y_clean)

    def _module_sizes(self):
        return {"n_outputs": len(self.classes_inferred_),
                "softmax": isinstance(self.criterion, type)
                and issubclass(self.criterion, torch.nn.NLLLoss)}

    def _target_tensor(self, y, device):
        return torch.as_tensor(y, dtype=torch.int64).to(device)

    def get_sample_losses(self, y_pred, y_true, X=None, training=False):
        """Per-row losses; with ``NLLLoss`` the module's probabilities are logged first.

        Parameters and return value as in :meth:`L2RWMixin.get_sample_losses`.
        """
        if isinstance(self.criterion_, torch.nn.NLLLoss):
            first = y_pred[0] if isinstance(y_pred, tuple) else y_pred
            # skorch's convention: the module outputs probabilities.
            y_pred = torch.log(first + torch.finfo(first.dtype).eps)
        return super().get_sample_losses(y_pred, y_true, X=X, training=training)

    def _check_output(self, out):
        width = out.shape[1] if out.dim() > 1 else 1
        if out.dim() != 2 or width != len(self.classes_):
            raise ValueError(
                f"the module outputs shape {tuple(out.shape)} for 2 rows but y has "
                f"{len(self.classes_)} classes: it must output one column per class")

    def check_data(self, X, y):
        """Nothing to check here: ``fit`` validated and encoded the data already."""

    # ---------------------------------------------------------------- prediction

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like, DataFrame, torch.Tensor or torch Dataset
            Rows in any form ``fit`` accepts, with the same features (checked
            before the module runs).

        Returns
        -------
        proba : numpy.ndarray of shape (n_samples, n_classes)
            The module's outputs after ``predict_nonlinearity`` (the softmax of
            the logits by default); each row sums to 1.
        """
        return super().predict_proba(self._validate_predict(X))

    def predict(self, X):
        """Predicted class labels (the original labels, any type).

        Parameters
        ----------
        X : array-like, DataFrame, torch.Tensor or torch Dataset
            As for :meth:`predict_proba`.

        Returns
        -------
        labels : numpy.ndarray of shape (n_samples,)
            ``classes_[predict_proba(X).argmax(axis=1)]``.
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]
