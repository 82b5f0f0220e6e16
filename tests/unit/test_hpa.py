"""The HPA baseline, pinned to the documented Kubernetes algorithm and default behavior."""

import pytest

from models.policy.hpa import HPAScaler, Policy


def test_desired_is_ceil_of_current_times_metric_ratio():
    hpa = HPAScaler(target_utilisation=0.6, max_replicas=100)
    # ceil(4 * 0.9 / 0.6) = 6
    assert hpa.recommend(0.0, current_replicas=4, utilisation=0.9) == 6


@pytest.mark.parametrize(
    ("utilisation", "expected"),
    [(0.65, 10), (0.55, 10), (0.67, 12), (0.53, 9)],
)
def test_tolerance_band_of_ten_percent(utilisation, expected):
    hpa = HPAScaler(target_utilisation=0.6, scale_down_window_s=0.0)
    assert hpa.recommend(0.0, current_replicas=10, utilisation=utilisation) == expected


def test_scale_down_stabilisation_keeps_the_highest_recommendation_of_the_window():
    hpa = HPAScaler(target_utilisation=0.5, max_replicas=100)
    assert hpa.recommend(0.0, 10, utilisation=0.5) == 10  # recommendation 10
    assert hpa.recommend(15.0, 10, utilisation=0.4) == 10  # 8, held by the 10
    assert hpa.recommend(30.0, 10, utilisation=0.1) == 10  # 2, held by the 10
    # At 300 s the first recommendation (t=0) has left the window; the highest left is 8.
    for ts in range(45, 300, 15):
        assert hpa.recommend(float(ts), 10, utilisation=0.1) == 10
    assert hpa.recommend(300.0, 10, utilisation=0.1) == 8
    # At 315 s the 8 (t=15) has left too: the window now holds only 2s.
    assert hpa.recommend(315.0, 8, utilisation=0.025) == 2


def test_scale_up_limited_to_max_of_100_percent_and_4_pods_per_15_s():
    hpa = HPAScaler(target_utilisation=0.5, max_replicas=1000)
    # From 2 pods: max(2 * 2, 2 + 4) = 6.
    assert hpa.recommend(0.0, 2, utilisation=50.0) == 6
    # Next period: max(12, 10) = 12, then 24.
    assert hpa.recommend(15.0, 6, utilisation=50.0, ready_replicas=6) == 12
    assert hpa.recommend(30.0, 12, utilisation=50.0, ready_replicas=12) == 24


def test_scale_up_limit_counts_from_the_start_of_the_period():
    # A 60 s policy period: the events of the last 60 s count against the limit.
    hpa = HPAScaler(
        target_utilisation=0.5,
        max_replicas=1000,
        scale_up_policies=(Policy("Pods", 4, 60.0),),
    )
    assert hpa.recommend(0.0, 2, utilisation=5.0) == 6
    assert hpa.recommend(15.0, 6, utilisation=5.0) == 6  # 4 already added in this period
    assert hpa.recommend(60.0, 6, utilisation=5.0) == 10  # the t=0 event is out


def test_scale_down_limit_per_period():
    hpa = HPAScaler(
        target_utilisation=0.5,
        scale_down_window_s=0.0,
        scale_down_policies=(Policy("Percent", 50, 15.0),),
    )
    assert hpa.recommend(0.0, 10, utilisation=0.05) == 5
    assert hpa.recommend(15.0, 5, utilisation=0.05) == 2  # int(5 * 0.5)
    # The default policy (100 % per 15 s) allows going straight to the recommendation.
    default = HPAScaler(target_utilisation=0.5, scale_down_window_s=0.0)
    assert default.recommend(0.0, 10, utilisation=0.05) == 1


def test_min_and_max_replicas():
    hpa = HPAScaler(target_utilisation=0.5, min_replicas=3, max_replicas=8)
    assert hpa.recommend(0.0, 6, utilisation=50.0) == 8
    low = HPAScaler(target_utilisation=0.5, min_replicas=3, scale_down_window_s=0.0)
    assert low.recommend(0.0, 6, utilisation=0.01) == 3
    # Out of bounds, the controller first brings the count back within them.
    assert HPAScaler(min_replicas=3).recommend(0.0, 1, utilisation=0.6) == 3
    assert HPAScaler(max_replicas=5).recommend(0.0, 9, utilisation=0.6) == 5


def test_not_yet_ready_pods_count_as_zero_on_scale_up():
    hpa = HPAScaler(target_utilisation=0.6)
    # 5 of 10 pods ready at 120 %: ratio 2, but with the 5 starting pods at 0 % it is 1.0,
    # within the tolerance: no change.
    assert hpa.raw_recommendation(10, 1.2, ready_replicas=5) == 10
    # At 150 %: ratio 2.5, damped to 1.25, ceil(1.25 * 10) = 13.
    assert hpa.raw_recommendation(10, 1.5, ready_replicas=5) == 13
    # Scale-down ignores the starting pods: ceil(0.5 * 5) = 3.
    assert hpa.raw_recommendation(10, 0.3, ready_replicas=5) == 3


def test_runs_once_per_sync_period():
    hpa = HPAScaler(target_utilisation=0.5)
    assert hpa.recommend(0.0, 2, utilisation=1.0) == 4
    assert hpa.recommend(5.0, 4, utilisation=2.0) == 4  # within the 15 s sync period
    assert hpa.recommend(15.0, 4, utilisation=2.0) == 8
