"""Experiments: config → grid of runs → report (built-in configs in ``configs/``)."""
