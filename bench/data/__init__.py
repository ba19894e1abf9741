"""Datasets used by the benchmark: loaders for the public layouts and a synthetic generator (`bench.data.synth`)."""
