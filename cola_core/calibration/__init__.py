"""The calibration set on disk, between curation (which writes it) and compression (which reads it):
both sides import :mod:`cola_core.calibration.files`, the one owner of its files."""
