import math

import pytest

from selfcorrect.evaluation.metrics import (
    correction_rate, edit_distance_ratio, histogram, summarize, total_variation, transition_metrics,
)


def test_transitions_over_all_problems_and_delta_identity():
    c1 = [False, False, False, True]
    c2 = [True, True, False, False]
    m = transition_metrics(c1, c2)
    assert m["acc_t1"] == 0.25 and m["acc_t2"] == 0.5
    assert m["delta_i2c"] == 0.5  # 2 of ALL 4 problems, not 2 of the 3 wrong ones
    assert m["delta_c2i"] == 0.25
    assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"])


def test_paper_base_row_identity():
    # the paper's base row: 4.6 − 15.8 = −11.2 (per cent, 500 problems)
    n = 500
    c1 = [True] * 263 + [False] * 237
    c2 = [True] * (263 - 79) + [False] * 79 + [True] * 23 + [False] * (237 - 23)
    m = transition_metrics(c1, c2)
    assert (m["delta_i2c"], m["delta_c2i"]) == (23 / n, 79 / n)
    assert m["delta"] == pytest.approx(-56 / n)


def test_transition_input_errors():
    with pytest.raises(ValueError, match="same non-zero number"):
        transition_metrics([], [])
    with pytest.raises(ValueError, match="same non-zero number"):
        transition_metrics([True], [True, False])


def test_correction_rate_is_conditional_on_wrong_first_attempts():
    assert correction_rate([False, False, True], [True, False, False]) == 0.5
    assert correction_rate([True], [False]) is None


def test_edit_distance_ratio_identical_disjoint_and_partial():
    assert edit_distance_ratio("78015 56112", "78015 56112") == 0.0
    assert edit_distance_ratio("abc", "xyz") == 1.0
    assert edit_distance_ratio("abc", "abd") == pytest.approx(2 / 6)  # delete c, insert d over 6 chars
    assert edit_distance_ratio("", "") == 0.0


def test_histogram_bins_and_range():
    assert histogram([0.0, 0.05, 0.5, 0.99, 1.0], bins=10) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    with pytest.raises(ValueError, match="1.5"):
        histogram([1.5])


def _rec(y1, y2, c1, c2, e1=None, e2=None, a1="1", a2="1"):
    return dict(y1=y1, y2=y2, correct1=c1, correct2=c2, well_formed1=True, well_formed2=True,
                answer1=a1, answer2=a2, error1=e1, error2=e2, edit_ratio=edit_distance_ratio(y1, y2))


def test_summarize_no_edit_answer_change_and_error_fixes():
    records = [
        _rec("a>1", "a>1", True, True),
        _rec("b>2", "c>3", False, True, e1="carry_drop@1", a1="2", a2="3"),
        _rec("d>4", "d>4", False, False, e1="sum_slip@0", e2="sum_slip@0", a1="4", a2="4"),
        _rec("e>5", "f>6", True, False, e2="final_copy", a1="5", a2="6"),
    ]
    m = summarize(records)
    assert m["no_edit_rate"] == 0.5
    assert m["answer_change_rate"] == 0.5
    assert m["errors_t1"] == {"carry_drop": 1, "sum_slip": 1}
    assert m["errors_fixed"] == {"carry_drop": 1}
    assert m["errors_t2"] == {"sum_slip": 1, "final_copy": 1}
    assert m["delta"] == 0 and m["delta_i2c"] == m["delta_c2i"] == 0.25
    assert sum(m["edit_ratio_hist"]) == 4


def test_total_variation():
    assert total_variation({"a": 2, "b": 2}, {"a": 1, "b": 1}) == 0.0
    assert total_variation({"a": 1}, {"b": 5}) == 1.0
    assert total_variation({"a": 3, "b": 1}, {"a": 1, "b": 1}) == pytest.approx(0.25)
    assert total_variation({}, {"a": 1}) is None
    assert not math.isnan(transition_metrics([True, False], [True, True])["delta_se"])
