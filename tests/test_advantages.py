"""seeker_jax.rl.advantages against hand-worked numbers: GRPO (with a zero-std group and a group
of one), Dr.GRPO, RLOO; DAPO's dynamic sampling and overlong filtering; errors.

Exact arithmetic by hand; tolerance 1e-6 (float32 results; largest error seen 3e-7)."""
import numpy as np
import pytest

from seeker_jax.rl.advantages import (compute_advantages, dynamic_sampling_keep, kept_groups,
                                      overlong_mask, register_advantage, registered_advantages)

# group "a": [1, 0, 1, 1] (mean 0.75, sample std 0.5); group "b": [0.5, 0.5] (std 0);
# group "c": [2.0] alone. Episodes interleaved: grouping is by id, not by position.
REWARDS = [1.0, 0.5, 0.0, 2.0, 1.0, 0.5, 1.0]
GROUPS = ["a", "b", "a", "c", "a", "b", "a"]


def test_grpo_hand_worked():
    adv = compute_advantages("grpo", REWARDS, GROUPS)
    # a: (r - 0.75) / (0.5 + eps) -> 0.5 for the ones, -1.5 for the zero; b: 0 (not 0/0); c: 0
    np.testing.assert_allclose(adv, np.array([0.5, 0, -1.5, 0, 0.5, 0, 0.5]) / (1 + 2e-6),
                               atol=1e-6)
    assert adv.dtype == np.float32 and np.isfinite(adv).all()


def test_grpo_population_std_and_eps():
    adv = compute_advantages("grpo", [0.0, 1.0], [7, 7], ddof=0, eps=0.5)
    np.testing.assert_allclose(adv, [-0.5, 0.5], atol=1e-6)  # std 0.5, (+-0.5) / (0.5 + 0.5)


def test_dr_grpo_hand_worked():
    adv = compute_advantages("dr_grpo", REWARDS, GROUPS)
    np.testing.assert_allclose(adv, [0.25, 0, -0.75, 0, 0.25, 0, 0.25], atol=1e-6)


def test_rloo_hand_worked():
    adv = compute_advantages("rloo", REWARDS, GROUPS)
    # a: a one minus the mean of the others (2/3) = 1/3; the zero minus 1 = -1
    np.testing.assert_allclose(adv, [1 / 3, 0, -1, 0, 1 / 3, 0, 1 / 3], atol=1e-6)
    # the leave-one-out mean written out, on a group of three
    r = np.array([3.0, 1.0, 8.0])
    expected = [r[i] - np.delete(r, i).mean() for i in range(3)]
    np.testing.assert_allclose(compute_advantages("rloo", r, [0, 0, 0]), expected, atol=1e-6)


def test_dynamic_sampling_and_overlong():
    keep = dynamic_sampling_keep(REWARDS, GROUPS)
    np.testing.assert_array_equal(keep, [True, False, True, False, True, False, True])
    assert kept_groups(REWARDS, GROUPS) == ["a"]
    assert dynamic_sampling_keep([1.0, 1.05], [0, 0], atol=0.1).tolist() == [False, False]
    np.testing.assert_array_equal(overlong_mask([False, True, False]), [1, 0, 1])
    np.testing.assert_array_equal(overlong_mask(np.array([1, 0])), [0, 1])


def test_registry_and_errors():
    assert {"grpo", "dr_grpo", "rloo"} <= set(registered_advantages())
    with pytest.raises(KeyError, match="unknown advantage estimator 'ppo'.*grpo"):
        compute_advantages("ppo", [1.0], [0])
    with pytest.raises(ValueError, match="3 rewards for 2 group ids"):
        compute_advantages("grpo", [1.0, 2.0, 3.0], [0, 0])
    with pytest.raises(ValueError, match="finite"):
        compute_advantages("grpo", [1.0, np.nan], [0, 0])
    with pytest.raises(ValueError, match="already registered"):
        register_advantage("grpo")(lambda r, g, n: r)
    with pytest.raises(ValueError, match="bools"):
        overlong_mask([0, 2])


def test_std_floor_stops_the_parsimony_blow_up():
    """The issue's group: eight right answers, seven at 0.98 and one at 0.99 (one tool call
    fewer under parsimony). Sample std 0.0035355: plain GRPO gives -0.35 and +2.47; with the
    floor 0.1 the advantages are the deviations over 0.1: -0.0125 and +0.0875."""
    r = [0.98] * 7 + [0.99]
    g = [0] * 8
    plain = compute_advantages("grpo", r, g)
    std = np.sqrt((7 * 0.00125 ** 2 + 0.00875 ** 2) / 7) + 1e-6      # + eps
    np.testing.assert_allclose(plain, [-0.00125 / std] * 7 + [0.00875 / std], rtol=1e-4)
    assert plain[-1] > 2.4 and plain[0] < -0.35
    floored = compute_advantages("grpo", r, g, std_floor=0.1)
    np.testing.assert_allclose(floored, [-0.0125] * 7 + [0.0875], rtol=1e-4)
    # a group split between right and wrong answers (std 0.5) is normalized as before
    mixed = [1.0, 0.0, 1.0, 1.0]
    np.testing.assert_array_equal(compute_advantages("grpo", mixed, [0] * 4, std_floor=0.1),
                                  compute_advantages("grpo", mixed, [0] * 4))
    with pytest.raises(ValueError, match="std_floor must be >= 0"):
        compute_advantages("grpo", r, g, std_floor=-0.1)
