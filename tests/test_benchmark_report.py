"""benchmarks/report.py: the Markdown pieces every study's report is made of."""

import math

import pytest

from benchmarks.report import (markdown_table, mean_pm, mean_std, median, paired_ratio,
                               percent, stats)


class TestMarkdownTable:
    def test_first_column_left_the_others_right_by_default(self):
        assert markdown_table(["name", "a", "b"], [["x", "1", "2"]]) == [
            "| name | a | b |", "|---|---:|---:|", "| x | 1 | 2 |"]

    def test_alignment_per_column(self):
        lines = markdown_table(["a", "b", "c"], [], align="lrl")
        assert lines == ["| a | b | c |", "|---|---:|---|"]

    @pytest.mark.parametrize("align", ["lr", "lrx", "lrrr"])
    def test_alignment_must_name_every_column(self, align):
        with pytest.raises(ValueError, match="l or r for each of the 3 columns"):
            markdown_table(["a", "b", "c"], [], align=align)


class TestMeanStd:
    def test_stats_drop_missing_and_count_finite(self):
        mean, std, n = stats([0.5, None, 0.7, float("nan")])
        assert (round(mean, 12), round(std, 12), n) == (0.6, 0.1, 2)
        assert math.isnan(stats([None])[0]) and stats([])[2] == 0

    def test_std_shown_unless_one_value(self):
        assert mean_pm(0.9134, 0.0212, 5, scale=100) == "91.3 ± 2.1"
        assert mean_pm(0.9134, 0.0212, 1, scale=100) == "91.3"
        assert percent(0.9134, 0.0212) == "91.3 ± 2.1"
        assert mean_pm(1.23456, 0.5, digits=3) == "1.235 ± 0.500"

    def test_not_a_number_is_na(self):
        assert percent(float("nan"), float("nan"), 0) == "n/a"

    def test_mean_std_of_values(self):
        # population std (NumPy's): values 1 and 3 -> 2 ± 1
        assert mean_std([0.01, 0.03], scale=100) == "2.0 ± 1.0"

    def test_signed_writes_the_sign_of_a_difference(self):
        assert mean_std([0.5, 1.5], signed=True) == "+1.0 ± 0.5"
        assert mean_std([-0.5, -1.5], signed=True) == "-1.0 ± 0.5"
        assert mean_pm(0.004, 0.1, n=1, scale=100, signed=True) == "+0.4"


class TestRatios:
    def test_ratios_are_paired_within_repeats(self):
        # A slow spell in repeats 2-3 hits both numbers of those repeats; the
        # ratio of the medians (30 / 10 = 3) would mix repeats, the paired one not.
        assert paired_ratio([2.0, 40.0, 30.0], [1.0, 20.0, 10.0]) == 2.0

    def test_median_of_nothing_is_nan(self):
        assert math.isnan(median([])) and median([3.0, 1.0, 2.0]) == 2.0
