"""The pass@k filter: the unbiased estimator against closed forms, and the funnel on a
hand-worked table (kept = solved sometimes, never always nor never)."""
import math

import pytest

from seeker_jax.eval.passk import pass_at_k, passk_filter


def test_pass_at_k_closed_forms():
    assert pass_at_k(8, 0, 8) == 0.0 and pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)  # pass@1 = c / n
    # 1 - C(5, 2) / C(8, 2) = 1 - 10/28
    assert pass_at_k(8, 3, 2) == pytest.approx(1 - 10 / 28)
    assert pass_at_k(8, 1, 8) == 1.0  # n - c < k: some draw of k holds the success
    # brute force over every k-subset of n = 5 samples with c = 2 successes
    from itertools import combinations
    n, c, k = 5, 2, 3
    hits = [any(i < c for i in s) for s in combinations(range(n), k)]
    assert pass_at_k(n, c, k) == pytest.approx(sum(hits) / math.comb(n, k))
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 1)


def test_filter_funnel_hand_worked():
    table = {"q0": (0, 8), "q1": (8, 8), "q2": (3, 8), "q3": (1, 8), "q4": (0, 8),
             "q5": (7, 8)}
    kept, funnel = passk_filter(table)
    assert kept == ["q2", "q3", "q5"]
    assert funnel["questions"] == 6 and funnel["never_solved"] == 2
    assert funnel["always_solved"] == 1 and funnel["kept"] == 3
    assert funnel["pass@1"] == pytest.approx((0 + 8 + 3 + 1 + 0 + 7) / 8 / 6)
    assert funnel["pass@k"] == pytest.approx(4 / 6)  # every question solved at least once
    with pytest.raises(ValueError, match="q9"):
        passk_filter({"q9": (3, 2)})
