"""Storage: atomic writes, fingerprints and the verified on-disk cache."""
