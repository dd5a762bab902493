"""Experiments: sweeps over configs on Hydra launchers, metrics of finished runs, contact sheets and reports."""
