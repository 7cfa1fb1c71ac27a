"""Models: loading (built-in, local, hub cache), architecture discovery, scoring primitives."""
