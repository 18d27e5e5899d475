"""The most any model of the original 14 features can follow the nightly ranking: the bound is right where it is
known, and no function of the features beats it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from models_py.modeling.companion_agreement import payload_groups, rank_correlation_bound


def test_a_target_that_is_a_function_of_the_features_is_followed_exactly() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(1000, 3)).astype(np.float32)
    assert rank_correlation_bound(payload_groups(x), x @ np.array([1.0, 10.0, 100.0])) == pytest.approx(1.0)


def test_features_that_tell_nobody_apart_cannot_follow_anything() -> None:
    x = np.ones((500, 14), dtype=np.float32)
    assert rank_correlation_bound(payload_groups(x), np.random.default_rng(1).random(500)) == 0.0


def test_no_function_of_the_features_beats_the_bound() -> None:
    """A target the features explain partly (one coarse feature plus what they leave out): the bound sits between 0
    and 1, and functions of the features, the within-payload mean among them, stay under it."""
    rng = np.random.default_rng(2)
    x = np.column_stack([rng.integers(0, 4, 5000), rng.integers(0, 3, 5000), np.full(5000, np.nan)]).astype(np.float32)
    target = x[:, 0] + 2.0 * rng.standard_normal(5000)
    group = payload_groups(x)
    assert group.max() + 1 == 12  # the NaN column splits nobody
    bound = rank_correlation_bound(group, target)
    assert 0.2 < bound < 0.8
    group_mean = (np.bincount(group, weights=target) / np.bincount(group))[group]
    for f in (x[:, 0], x[:, 0] + x[:, 1], -x[:, 1], group_mean):
        assert spearmanr(f, target).statistic <= bound + 1e-12
    assert spearmanr(group_mean, target).statistic > bound - 0.05
