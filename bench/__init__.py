"""Benchmarks, run by hand: `python -m bench` (the whole suite) or one script of this folder."""
