"""``L2RWRegressor``: skorch's ``NeuralNetRegressor`` trained by Learning to Reweight."""

import numpy as np
import torch
from skorch import NeuralNetRegressor
from sklearn.utils import check_array

from sk_l2rw.net import L2RWMixin
from sk_l2rw.validation import warn_other_scale

__all__ = ["L2RWRegressor"]


class L2RWRegressor(L2RWMixin, NeuralNetRegressor):
    """Neural-network regressor trained with Learning to Reweight Examples.

    The regression counterpart of :class:`sk_l2rw.L2RWClassifier`: every training
    step weights the rows of the mini-batch by how well their gradient agrees with
    the gradient of the loss on a trusted ("clean") set, so rows with corrupted
    targets get little or no weight.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        Outputs ``(n, n_outputs)`` (or ``(n,)`` for a single output).
    clean_X, clean_y : array-like or None
        The clean set known at construction (not transformed by a Pipeline; give it
        to ``fit`` as ``X_val``/``y_val`` for that).
    meta_gradient : {"auto", "ghost", "jvp", "reference"}, default="auto"
        As in :class:`sk_l2rw.L2RWClassifier`.
    clean_batch_size : int or None, default=None
    train_on_clean : bool, default=False
        Also train on the clean rows, as in :class:`sk_l2rw.L2RWClassifier`.
    categorical_features : "from_dtype", None or list of str, default="from_dtype"
        Columns of a DataFrame ``X`` to embed, as in :class:`sk_l2rw.L2RWClassifier`.
    random_state : None, int or numpy.random.RandomState, default=None
    device : str or torch.device, default="auto"
    criterion : torch criterion class, default=torch.nn.MSELoss
        Any criterion that accepts ``reduction``; per-row losses are averaged over
        the outputs of a row.
    train_split : callable or None, default=None
    **kwargs
        Any other ``NeuralNetRegressor`` parameter.

    Attributes
    ----------
    sample_weights_, meta_gradient_, n_features_in_, feature_names_in_, categories_,
    history_, device_ : as in :class:`sk_l2rw.L2RWClassifier`.
    n_outputs_ : int
        Number of targets per row.

    Warns
    -----
    UserWarning
        As in :class:`sk_l2rw.L2RWClassifier`, when the clean loss blows up.
    """

    # ----------------------------------------------------------------- targets

    def _check_targets(self, y, *, name):
        if torch.is_tensor(y):
            y = y.detach().cpu().numpy()
        y = check_array(y, ensure_2d=False, dtype=np.float64, ensure_all_finite=True,
                        input_name=name)
        if y.ndim > 2:
            raise ValueError(f"{name} must be 1-D or 2-D; got shape {y.shape}")
        return y

    def _encode_targets(self, y, y_clean, *, reset, where, dataset=None):
        if dataset is not None:  # the dataset yields the targets: look at one
            y = np.asarray(dataset[0][1], dtype=np.float64).reshape(1, -1)
            if np.ndim(dataset[0][1]) == 0:
                y = y[:, 0]
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if not reset and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs but the estimator was fitted "
                             f"with {self.n_outputs_}")
        if y_clean is not None:
            clean_outputs = 1 if y_clean.ndim == 1 else y_clean.shape[1]
            if clean_outputs != n_outputs:
                raise ValueError(
                    f"the clean set {where[1]} has {clean_outputs} outputs per row but "
                    f"y has {n_outputs}")
            y_clean = y_clean.reshape(len(y_clean), n_outputs)
            if dataset is None:
                warn_other_scale(y.reshape(len(y), n_outputs), y_clean, where[1])
        if reset:
            self.n_outputs_ = n_outputs
            self._y_1d_ = y.ndim == 1
        if dataset is not None:
            return None, y_clean
        return y.reshape(len(y), n_outputs), y_clean

    def _module_sizes(self):
        return {"n_outputs": self.n_outputs_}

    def _target_tensor(self, y, device):
        return torch.as_tensor(y, dtype=self._module_dtype()).to(device)

    def _check_output(self, out):
        width = out[0].numel() if out.dim() > 0 else 0
        if width != self.n_outputs_:
            raise ValueError(
                f"the module outputs {width} values per row but y has "
                f"{self.n_outputs_} outputs")

    def check_data(self, X, y):
        """Nothing to check here: ``fit`` validated the data already."""

    # ---------------------------------------------------------------- prediction

    def get_sample_losses(self, y_pred, y_true, X=None, training=False):
        """Per-row losses; a 1-D module output is matched to ``(n, 1)`` targets."""
        first = y_pred[0] if isinstance(y_pred, tuple) else y_pred
        if torch.is_tensor(y_true) and first.dim() == 1 and y_true.dim() == 2:
            y_pred = first[:, None]
        return super().get_sample_losses(y_pred, y_true, X=X, training=training)

    @property
    def predict_proba(self):
        """Regressors have no ``predict_proba`` (skorch's nets do); use ``predict``."""
        raise AttributeError(
            f"{type(self).__name__} has no predict_proba; use predict")

    def predict(self, X):
        """Predicted targets, 1-D when ``y`` given to ``fit`` was 1-D.

        Parameters
        ----------
        X : array-like, DataFrame, torch.Tensor or torch Dataset

        Returns
        -------
        numpy.ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        # float64 like every scikit-learn regressor, whatever the module computes in;
        # super() skips this class's predict_proba (which refuses) for skorch's.
        y_pred = super().predict_proba(self._validate_predict(X)).astype(np.float64)
        if self._y_1d_:
            return y_pred.reshape(len(y_pred))
        return y_pred.reshape(len(y_pred), -1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
