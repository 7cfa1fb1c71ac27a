"""Curation, COLA's three stages (He et al., NeurIPS 2025): Stage 1 correspondence, Stage 2 processing,
Stage 3 activations → space → selection, metrics and export, composed in :mod:`cola_core.curation.pipeline`."""
