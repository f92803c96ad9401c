"""The noise-floor quantile and the verdicts keel gives skew and drift measurements."""

import pytest

from keel.monitoring.checks import Alert, calibrated
from keel.monitoring.noise import quantile


def test_quantile_is_the_value_chance_exceeds_at_the_rate():
    values = list(range(1, 101))  # 1..100
    assert quantile(values, 0.01) == 99  # exceeded by 1 of 100 draws
    assert quantile(values, 0.5) == 50
    assert quantile([0.3], 0.01) == 0.3


def measurement(value, threshold=0.2):
    return {"measure": "JENSEN_SHANNON_DIVERGENCE", "value": value, "threshold": threshold}


def skew_alert(feature):
    return Alert(feature, "skew", "COMPARATOR_HIGH_JS_DIVERGENCE", "TFDV's sentence")


@pytest.mark.parametrize(
    "value, floor, verdict, alerts",
    [
        (0.5, 0.3, "shifted", 1),
        (0.5, 0.6, "within chance: random windows of 13 training rows reach 0.600", 0),
        (0.1, 0.3, "too few rows to judge (n=13, need about 52)", 0),
        (0.1, 0.05, "no shift", 0),
    ],
)
def test_an_alert_needs_the_threshold_and_the_noise_floor(value, floor, verdict, alerts):
    measured = {"x": measurement(value)}
    raised = [skew_alert("x")] if value > 0.2 else []
    kept = calibrated(raised, measured, "skew", {"x": floor}, 13, "random windows of 13 training rows", 0.01, {"x": 52})
    assert measured["x"]["verdict"] == verdict and measured["x"]["noise_floor"] == floor
    assert len(kept) == alerts
    if kept:
        assert kept[0].description == (
            "Jensen-Shannon divergence 0.500 over 13 rows: above the threshold 0.2 and the noise floor 0.300 "
            "(what random windows of 13 training rows exceed 0.01 of the time)"
        )
        assert kept[0].tfdv_description == "TFDV's sentence"


def test_other_kinds_of_alert_pass_untouched_and_a_window_larger_than_training_is_said():
    schema_alert = Alert("island", "schema", "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "Atlantis")
    measured = {"island": measurement(0.1)}
    kept = calibrated([schema_alert], measured, "skew", {"island": 0.4}, 5, "w", 0.01, {"island": None}, 286)
    assert kept == [schema_alert]
    assert measured["island"]["verdict"] == "too few rows to judge (n=5, more than the 286 training rows)"


def test_drift_says_what_chance_gives_where_the_rows_needed_were_not_searched():
    measured = {"sex": {"measure": "L_INFTY", "value": 0.1, "threshold": 0.2}}
    calibrated([], measured, "drift", {"sex": 0.25}, 58, "pairs of random windows of 58 and 58 training rows", 0.01)
    assert measured["sex"]["verdict"] == (
        "too few rows to judge (n=58, pairs of random windows of 58 and 58 training rows reach 0.250)"
    )


def test_wilson_upper_bound_of_live_accuracy():
    from keel.monitoring import wilson_upper

    assert wilson_upper(0, 13, 0.025) == pytest.approx(0.2281, abs=1e-4)  # the textbook 95% interval of 0/13
    assert wilson_upper(13, 13, 0.01) == 1.0
    # 11 of 13 right is 0.846, more than 0.05 below an eval accuracy of 0.98, but 13 rows cannot show it:
    assert wilson_upper(11, 13, 0.01) > 0.98 - 0.05
    # the same share of 1,300 rows can:
    assert wilson_upper(1100, 1300, 0.01) < 0.98 - 0.05
