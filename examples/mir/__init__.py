"""MIR examples for lotterytrim: the paper's five model families, data and metrics."""
