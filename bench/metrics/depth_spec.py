"""The depth metrics as declarations (names, directions, units, roles), light on purpose: task
metadata imports this without torch or numpy. The computation lives in `bench/metrics/depth.py`."""
from __future__ import annotations

from bench.metrics import Metric, diagnostic, reference

# name -> (higher_is_better, unit, description); the order is the report order, RMSE is the headline
METRIC_TABLE: dict[str, tuple[bool, str, str]] = {
    "rmse": (False, "m", "root mean squared error (m), per image then averaged"),
    "abs_rel": (False, "", "mean |pred - gt| / gt"),
    "sq_rel": (False, "m", "mean (pred - gt)^2 / gt"),
    "delta1": (True, "", "fraction of pixels with max(pred/gt, gt/pred) < 1.25"),
    "delta2": (True, "", "fraction of pixels with max(pred/gt, gt/pred) < 1.25^2"),
    "delta3": (True, "", "fraction of pixels with max(pred/gt, gt/pred) < 1.25^3"),
    "log10": (False, "", "mean |log10(pred) - log10(gt)|"),
    "rmse_log": (False, "", "sqrt(mean (log pred - log gt)^2)"),
    "silog": (False, "", "100 * sqrt(mean(e^2) - mean(e)^2), e = log pred - log gt (scale-invariant log error)"),
}
METRIC_NAMES: tuple[str, ...] = tuple(METRIC_TABLE)
DEPTH_METRICS: tuple[Metric, ...] = tuple(Metric(n, hib, d, unit) for n, (hib, unit, d) in METRIC_TABLE.items())

# what a depth probe reports beside the Eigen set: the constant-predictor floors and the selection score
PROBE_METRICS: tuple[Metric, ...] = DEPTH_METRICS + (
    reference("rmse_constant_baseline", False,
              "RMSE (m) of predicting the train-set mean depth everywhere (same crop and averaging): a floor", "m"),
    diagnostic("val_rmse", False, "RMSE (m) of the selected bank member on the held-out part of train "
                                  "(at the training-target resolution)", "m"),
    reference("val_rmse_constant_baseline", False,
              "RMSE (m) of the train-set mean depth on the held-out part of train", "m"),
)


def higher_is_better(name: str) -> bool:
    return METRIC_TABLE[name][0]


__all__ = ["DEPTH_METRICS", "METRIC_NAMES", "METRIC_TABLE", "PROBE_METRICS", "higher_is_better"]
