"""Evaluation: capability scores with intervals, retention, public benchmarks, the run store."""
