"""Synthetic input generators: reproducible, deliberately dirty source files for demos and tests."""
