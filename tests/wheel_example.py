"""The README's example against an installed wheel (``make wheel-check``).

Run from outside the repository, so that ``sk_l2rw`` comes from the wheel. Uses
scikit-learn's digits only: nothing is downloaded.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import HistGradientBoostingClassifier

import sk_l2rw
from sk_l2rw import L2RWClassifier, ReweightedClassifier
from sk_l2rw.modules import MLP
from sk_l2rw.noise import flip_labels, split_clean

X, y = load_digits(return_X_y=True)
X = (X / 16).astype(np.float32)
X_noisy, y_true, clean_X, clean_y = split_clean(X[:1200], y[:1200], 10, random_state=0)
y_noisy, flipped = flip_labels(y_true, 0.4, "background", background_class=0,
                               random_state=0)
net = L2RWClassifier(MLP, clean_X, clean_y, max_epochs=5, random_state=0, verbose=0)
net.fit(X_noisy, y_noisy)
clf = ReweightedClassifier(HistGradientBoostingClassifier(max_iter=20), random_state=0)
clf.fit(X_noisy, y_noisy, X_val=clean_X, y_val=clean_y)
accuracy = float(np.mean(clf.predict(X[1200:]) == y[1200:]))
print(f"sk_l2rw {sk_l2rw.__version__} from {sk_l2rw.__file__}")
print(f"ReweightedClassifier test accuracy {accuracy:.3f}, mean weight of flipped rows "
      f"{clf.sample_weight_[flipped].mean():.2f} vs intact {clf.sample_weight_[~flipped].mean():.2f}")
assert "site-packages" in sk_l2rw.__file__, "not the installed wheel"
assert clf.sample_weight_[flipped].mean() < clf.sample_weight_[~flipped].mean()

# The trusted rows inside the table: TrustedClassifier picks a route on them.
from sk_l2rw import TrustedClassifier  # noqa: E402
from sk_l2rw.selection import ROUTES  # noqa: E402

table = np.vstack([X_noisy, clean_X])
audited = np.r_[np.zeros(len(y_noisy), bool), np.ones(len(clean_y), bool)]
chooser = TrustedClassifier(HistGradientBoostingClassifier(max_iter=20),
                            routes=("mixed", "glc", "irbl", "trusted_only"), cv=3,
                            random_state=0)
chooser.fit(table, np.r_[y_noisy, clean_y], trusted=audited)
print(f"TrustedClassifier chose {chooser.route_!r}: test accuracy "
      f"{np.mean(chooser.predict(X[1200:]) == y[1200:]):.3f}")
assert set(chooser.route_.split("+")) <= set(ROUTES) and len(chooser.cv_results_["route"]) == 4
