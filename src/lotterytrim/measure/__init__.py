"""Measuring models: parameters, MACs, disk bytes, inference memory and latency, as tables."""
