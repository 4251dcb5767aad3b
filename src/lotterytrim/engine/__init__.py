"""The engine: trace a model into groups of coupled units and cut them out for real."""
