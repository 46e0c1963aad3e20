"""After ``make docs``: every public name has an entry on the API page."""

import importlib
import sys
from pathlib import Path

PUBLIC = {
    "sk_l2rw": ["L2RWClassifier", "L2RWRegressor", "ReweightedClassifier",
                "TrustedClassifier", "GLCClassifier", "IRBLClassifier"],
    "sk_l2rw.model_selection": None,
    "sk_l2rw.selection": ["ROUTES", "fit_route", "corrected_net", "brier_losses",
                          "choose_route", "score_weights"],
    "sk_l2rw.glc": ["corruption_matrix", "correct_proba", "ForwardCorrectedLoss"],
    "sk_l2rw.irbl": ["irbl_weights"],
    "sk_l2rw.trusted": ["check_trusted", "split_trusted", "fit_with_trusted", "fit_rows"],
    "sk_l2rw.pruning": None,
    "sk_l2rw.modules": None,
    "sk_l2rw.reweighted": ["row_weights"],
    "sk_l2rw.diagnostics": None,
    "sk_l2rw.noise": None,
    "sk_l2rw.callbacks": None,
    "sk_l2rw.exceptions": None,
    "sk_l2rw.weights": None,
    "sk_l2rw.categorical": None,
    "sk_l2rw.data": ["SparseRows", "sparse_tensor"],
    "sk_l2rw.distributed": None,
    "sk_l2rw.ghost": None,
}


def main(html=Path(__file__).resolve().parent / "_build" / "html" / "api.html"):
    text = html.read_text()
    missing = []
    for module_name, names in PUBLIC.items():
        module = importlib.import_module(module_name)
        for name in names or module.__all__:
            if f'id="{module_name}.{name}"' not in text:
                missing.append(f"{module_name}.{name}")
    if missing:
        print("no API entry for: " + ", ".join(missing))
        return 1
    print(f"API page documents every public name ({html})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
