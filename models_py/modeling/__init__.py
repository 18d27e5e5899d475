"""Turning features into calibrated probabilities: datasets, training, calibration, metrics, scoring, backtest."""
