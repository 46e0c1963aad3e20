"""Tests for sk_l2rw.noise: label flips, imbalance and the clean split."""

import numpy as np
import pandas as pd
import pytest

from sk_l2rw.noise import flip_labels, make_imbalanced, split_clean


@pytest.fixture
def y10():
    # 10 classes, 100 rows each, shuffled so row order carries no class info.
    rng = np.random.RandomState(0)
    return rng.permutation(np.repeat(np.arange(10), 100))


class TestFlipCounts:
    @pytest.mark.parametrize("kind", ["uniform", "pair"])
    @pytest.mark.parametrize("rate", [0.0, 0.1, 0.37, 0.5, 1.0])
    def test_exact_count_all_rows_eligible(self, y10, kind, rate):
        y_noisy, mask = flip_labels(y10, rate, kind, random_state=1)
        assert mask.sum() == round(rate * len(y10))
        # The mask marks exactly the rows whose label changed.
        np.testing.assert_array_equal(mask, y_noisy != y10)

    def test_rounding_is_pythons_round(self):
        y = np.array([0, 1] * 5)  # 10 rows
        # 0.25 * 10 = 2.5 rounds to 2 (half to even), 0.35 * 10 = 3.5 to 4.
        assert flip_labels(y, 0.25, random_state=0)[1].sum() == 2
        assert flip_labels(y, 0.35, random_state=0)[1].sum() == 4

    def test_background_counts_only_eligible_rows(self, y10):
        # 900 rows are not in class 3, so 0.4 * 900 = 360 are flipped.
        y_noisy, mask = flip_labels(y10, 0.4, "background", background_class=3, random_state=0)
        assert mask.sum() == 360
        np.testing.assert_array_equal(mask, y_noisy != y10)
        assert not mask[y10 == 3].any()

    def test_rate_zero_returns_equal_copy(self, y10):
        y_noisy, mask = flip_labels(y10, 0.0, random_state=0)
        np.testing.assert_array_equal(y_noisy, y10)
        assert not mask.any()
        assert y_noisy is not y10


class TestFlipKinds:
    def test_uniform_never_keeps_class(self, y10):
        y_noisy, mask = flip_labels(y10, 1.0, "uniform", random_state=0)
        assert mask.all()
        assert np.all(y_noisy != y10)

    def test_uniform_hits_other_classes_evenly(self):
        # 40,000 flips out of class 0 into 4 other classes: 10,000 expected
        # each. Chi-square with 3 dof has a 99.9 % quantile of 16.3; a biased
        # mapping (e.g. always +1) scores in the tens of thousands.
        y = np.concatenate([np.zeros(40_000, dtype=int), np.arange(1, 5)])
        y_noisy, mask = flip_labels(y, 1.0, "uniform", random_state=42)
        targets = y_noisy[:40_000]
        counts = np.array([(targets == k).sum() for k in range(1, 5)])
        assert (targets != 0).all()
        expected = 10_000
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 16.3, counts

    def test_uniform_transitions_cover_every_pair(self, y10):
        y_noisy, mask = flip_labels(y10, 1.0, "uniform", random_state=3)
        pairs = set(zip(y10[mask].tolist(), y_noisy[mask].tolist()))
        # 1000 flips over 90 possible (true, new) pairs: all should occur.
        assert pairs == {(a, b) for a in range(10) for b in range(10) if a != b}

    def test_background_goes_to_one_class(self, y10):
        y_noisy, mask = flip_labels(y10, 0.5, "background", background_class=7, random_state=0)
        assert set(y_noisy[mask].tolist()) == {7}
        assert (y_noisy == 7).sum() == 100 + 450

    def test_background_default_class_is_drawn_and_reproducible(self, y10):
        targets = set()
        for seed in range(20):
            y_noisy, mask = flip_labels(y10, 0.3, "background", random_state=seed)
            drawn = set(y_noisy[mask].tolist())
            assert len(drawn) == 1
            again, _ = flip_labels(y10, 0.3, "background", random_state=seed)
            np.testing.assert_array_equal(y_noisy, again)
            targets |= drawn
        # The default background class depends on the seed.
        assert len(targets) > 1

    def test_pair_maps_to_next_class_mod_k(self):
        # Unsorted, non-contiguous labels: "next" follows sorted class order.
        y = np.array([30, 10, 20, 30, 10, 20] * 10)
        y_noisy, mask = flip_labels(y, 1.0, "pair", random_state=0)
        nxt = {10: 20, 20: 30, 30: 10}
        assert mask.all()
        np.testing.assert_array_equal(y_noisy, [nxt[v] for v in y.tolist()])

    def test_pair_partial_rate_only_changes_chosen_rows(self, y10):
        y_noisy, mask = flip_labels(y10, 0.2, "pair", random_state=5)
        np.testing.assert_array_equal(y_noisy[mask], (y10[mask] + 1) % 10)
        np.testing.assert_array_equal(y_noisy[~mask], y10[~mask])


class TestFlipTypesAndSafety:
    def test_string_labels_keep_dtype(self):
        y = np.array(["cat", "dog", "emu"] * 20)
        for kind in ["uniform", "pair"]:
            y_noisy, mask = flip_labels(y, 0.5, kind, random_state=0)
            assert y_noisy.dtype == y.dtype
            assert mask.sum() == 30
            assert set(y_noisy.tolist()) <= {"cat", "dog", "emu"}
        y_noisy, mask = flip_labels(y, 0.5, "background", background_class="emu", random_state=0)
        assert set(y_noisy[mask].tolist()) == {"emu"}
        assert mask.sum() == 20

    def test_object_and_list_input(self):
        y = ["a", "b"] * 10
        y_noisy, mask = flip_labels(y, 0.5, random_state=0)
        assert isinstance(y_noisy, np.ndarray)
        assert mask.sum() == 10
        obj = np.array(y, dtype=object)
        assert flip_labels(obj, 0.5, random_state=0)[0].dtype == object

    def test_series_input_gives_numpy(self):
        y = pd.Series([1, 2, 3] * 5, index=np.arange(100, 115))
        y_noisy, mask = flip_labels(y, 0.4, random_state=0)
        assert isinstance(y_noisy, np.ndarray)
        assert y_noisy.dtype == y.dtype
        assert mask.sum() == 6

    @pytest.mark.parametrize("kind", ["uniform", "background", "pair"])
    def test_reproducible_and_seed_sensitive(self, y10, kind):
        a = flip_labels(y10, 0.3, kind, random_state=11)
        b = flip_labels(y10, 0.3, kind, random_state=11)
        c = flip_labels(y10, 0.3, kind, random_state=12)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[1], c[1])

    def test_accepts_random_state_instance(self, y10):
        a = flip_labels(y10, 0.3, random_state=np.random.RandomState(4))
        b = flip_labels(y10, 0.3, random_state=4)
        np.testing.assert_array_equal(a[0], b[0])

    @pytest.mark.parametrize("kind", ["uniform", "background", "pair"])
    def test_input_not_modified(self, y10, kind):
        before = y10.copy()
        flip_labels(y10, 0.9, kind, random_state=0)
        np.testing.assert_array_equal(y10, before)


class TestFlipValidation:
    @pytest.mark.parametrize("rate", [-0.1, 1.01, float("nan"), "0.5", True, None])
    def test_bad_rate(self, rate):
        with pytest.raises(ValueError, match="rate"):
            flip_labels([0, 1, 0, 1], rate)

    def test_unknown_kind(self):
        with pytest.raises(ValueError, match="Unknown kind 'symmetric'"):
            flip_labels([0, 1, 0, 1], 0.5, "symmetric")

    def test_background_class_not_in_labels(self):
        with pytest.raises(ValueError, match="background_class=5 is not among"):
            flip_labels([0, 1, 0, 1], 0.5, "background", background_class=5)
        with pytest.raises(ValueError, match="background_class='x' is not among"):
            flip_labels([0, 1, 0, 1], 0.5, "background", background_class="x")

    @pytest.mark.parametrize("y", [[1, 1, 1], [], ["a"]])
    def test_fewer_than_two_classes(self, y):
        with pytest.raises(ValueError, match="at least 2 classes"):
            flip_labels(y, 0.5)

    def test_two_dimensional_y(self):
        with pytest.raises(ValueError, match="one-dimensional"):
            flip_labels(np.zeros((3, 2)), 0.5)


@pytest.fixture
def fours_nines():
    # 300 fours, 200 nines, plus other digits that must be dropped. Each row
    # of X encodes its own index so the tests can trace rows back.
    y = np.array([4] * 300 + [9] * 200 + [0] * 50 + [7] * 50)
    y = np.random.RandomState(1).permutation(y)
    X = np.column_stack([np.arange(len(y)), y]).astype(float)
    return X, y


class TestMakeImbalanced:
    @pytest.mark.parametrize("p", [0.5, 0.9, 0.95, 0.995])
    def test_exact_proportion(self, fours_nines, p):
        X, y = fours_nines
        n = 200
        X_sub, y_sub = make_imbalanced(X, y, p, n_samples=n, random_state=0)
        assert len(y_sub) == n and X_sub.shape == (n, 2)
        assert (y_sub == 4).sum() == round(p * n)
        assert (y_sub == 9).sum() == n - round(p * n)
        # Rows stay paired with their labels and are not repeated.
        np.testing.assert_array_equal(X_sub[:, 1], y_sub)
        assert len(np.unique(X_sub[:, 0])) == n

    def test_default_size_uses_the_limiting_class(self, fours_nines):
        X, y = fours_nines
        # 300 fours at 0.9 allow 333 rows, needing 33 nines: fours limit.
        X_sub, y_sub = make_imbalanced(X, y, 0.9, random_state=0)
        assert (y_sub == 4).sum() == 300 and (y_sub == 9).sum() == 33
        # At 0.2 the first class is the minority: 200 nines allow 250 rows.
        X_sub, y_sub = make_imbalanced(X, y, 0.2, random_state=0)
        assert (y_sub == 4).sum() == 50 and (y_sub == 9).sum() == 200

    def test_paper_setting_sizes(self):
        y = np.array([4] * 5000 + [9] * 5000)
        X = np.zeros((len(y), 3))
        _, y_sub = make_imbalanced(X, y, 0.995, n_samples=5000, random_state=0)
        assert (y_sub == 4).sum() == 4975 and (y_sub == 9).sum() == 25

    def test_only_the_two_classes_and_shuffled(self, fours_nines):
        X, y = fours_nines
        _, y_sub = make_imbalanced(X, y, 0.5, n_samples=100, random_state=0)
        assert set(y_sub.tolist()) == {4, 9}
        # Not sorted by class: the majority block is broken up.
        assert not np.all(y_sub[:50] == 4)

    def test_swapped_classes_and_strings(self):
        y = np.array(["four"] * 40 + ["nine"] * 40)
        X = np.arange(80).reshape(-1, 1)
        _, y_sub = make_imbalanced(X, y, 0.75, classes=("nine", "four"), n_samples=40, random_state=0)
        assert (y_sub == "nine").sum() == 30 and (y_sub == "four").sum() == 10

    def test_dataframe_in_dataframe_out(self, fours_nines):
        X, y = fours_nines
        df = pd.DataFrame(X, columns=["idx", "label"], index=np.arange(1000, 1600))
        ys = pd.Series(y, index=df.index)
        X_sub, y_sub = make_imbalanced(df, ys, 0.8, n_samples=50, random_state=0)
        assert isinstance(X_sub, pd.DataFrame) and isinstance(y_sub, pd.Series)
        np.testing.assert_array_equal(X_sub["label"].to_numpy(), y_sub.to_numpy())

    def test_reproducible_and_input_untouched(self, fours_nines):
        X, y = fours_nines
        X0, y0 = X.copy(), y.copy()
        a = make_imbalanced(X, y, 0.9, n_samples=100, random_state=3)
        b = make_imbalanced(X, y, 0.9, n_samples=100, random_state=3)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(X, X0)
        np.testing.assert_array_equal(y, y0)

    @pytest.mark.parametrize("p", [0.0, 1.0, -0.5, 1.5, float("nan"), "0.9"])
    def test_bad_proportion(self, fours_nines, p):
        with pytest.raises(ValueError, match="majority_proportion"):
            make_imbalanced(*fours_nines, p)

    def test_class_missing(self, fours_nines):
        with pytest.raises(ValueError, match=r"classes \[3\] are not present"):
            make_imbalanced(*fours_nines, 0.9, classes=(4, 3))

    @pytest.mark.parametrize("classes", [(4, 4), (4,), (4, 9, 0)])
    def test_bad_classes(self, fours_nines, classes):
        with pytest.raises(ValueError, match="two distinct labels"):
            make_imbalanced(*fours_nines, 0.9, classes=classes)

    def test_not_enough_rows(self, fours_nines):
        with pytest.raises(ValueError, match="Not enough rows.*have 300"):
            make_imbalanced(*fours_nines, 0.9, n_samples=400)

    def test_minority_would_be_empty(self, fours_nines):
        with pytest.raises(ValueError, match="no row"):
            make_imbalanced(*fours_nines, 0.995, n_samples=100)

    @pytest.mark.parametrize("n", [0, 1, 2.5, True])
    def test_bad_n_samples(self, fours_nines, n):
        with pytest.raises(ValueError, match="n_samples"):
            make_imbalanced(*fours_nines, 0.9, n_samples=n)

    def test_length_mismatch(self, fours_nines):
        X, y = fours_nines
        with pytest.raises(ValueError, match="different numbers of rows"):
            make_imbalanced(X[:-1], y, 0.9)


class TestSplitClean:
    @pytest.fixture
    def data(self):
        rng = np.random.RandomState(0)
        y = rng.permutation(np.repeat([0, 1, 2], [50, 30, 20]))
        X = np.column_stack([np.arange(100), y]).astype(float)
        return X, y

    def test_balanced_disjoint_and_complete(self, data):
        X, y = data
        X_rest, y_rest, X_clean, y_clean = split_clean(X, y, 5, random_state=0)
        assert dict(zip(*np.unique(y_clean, return_counts=True))) == {0: 5, 1: 5, 2: 5}
        assert len(y_rest) == 85
        rest_ids, clean_ids = set(X_rest[:, 0]), set(X_clean[:, 0])
        assert not rest_ids & clean_ids
        assert rest_ids | clean_ids == set(range(100))
        # Labels travel with their rows.
        np.testing.assert_array_equal(X_rest[:, 1], y_rest)
        np.testing.assert_array_equal(X_clean[:, 1], y_clean)

    def test_keeps_original_order(self, data):
        X, y = data
        X_rest, _, X_clean, _ = split_clean(X, y, 3, random_state=0)
        assert np.all(np.diff(X_rest[:, 0]) > 0)
        assert np.all(np.diff(X_clean[:, 0]) > 0)

    def test_dataframe_with_odd_index(self, data):
        X, y = data
        idx = np.arange(100)[::-1] * 7  # positions and labels disagree
        df = pd.DataFrame({"id": X[:, 0], "cat": pd.Series(y).map(str).to_numpy()}, index=idx)
        ys = pd.Series(y, index=idx, name="target")
        X_rest, y_rest, X_clean, y_clean = split_clean(df, ys, 4, random_state=1)
        assert isinstance(X_rest, pd.DataFrame) and isinstance(y_clean, pd.Series)
        assert y_clean.value_counts().to_dict() == {0: 4, 1: 4, 2: 4}
        np.testing.assert_array_equal(X_clean["cat"].to_numpy(), y_clean.astype(str).to_numpy())
        np.testing.assert_array_equal(X_clean.index, y_clean.index)
        assert sorted(pd.concat([X_rest, X_clean])["id"]) == list(range(100))

    def test_string_labels_and_lists(self):
        y = ["a"] * 4 + ["b"] * 3
        X = [[i] for i in range(7)]
        X_rest, y_rest, X_clean, y_clean = split_clean(X, y, 2, random_state=0)
        assert sorted(y_clean) == ["a", "a", "b", "b"]
        assert sorted(map(tuple, X_rest + X_clean)) == [(i,) for i in range(7)]

    def test_reproducible_and_input_untouched(self, data):
        X, y = data
        X0 = X.copy()
        a = split_clean(X, y, 5, random_state=7)
        b = split_clean(X, y, 5, random_state=7)
        c = split_clean(X, y, 5, random_state=8)
        np.testing.assert_array_equal(a[2], b[2])
        assert not np.array_equal(a[2], c[2])
        np.testing.assert_array_equal(X, X0)

    def test_class_too_small(self, data):
        X, y = data
        # Class 2 has 20 rows: holding out 20 would leave none behind.
        with pytest.raises(ValueError, match=r"classes \[2\] have too few"):
            split_clean(X, y, 20)
        split_clean(X, y, 19)

    @pytest.mark.parametrize("n", [0, -1, 1.5, True, None])
    def test_bad_n_per_class(self, data, n):
        with pytest.raises(ValueError, match="n_per_class"):
            split_clean(*data, n)

    def test_length_mismatch(self, data):
        X, y = data
        with pytest.raises(ValueError, match="different numbers of rows"):
            split_clean(X, y[:-1], 2)
