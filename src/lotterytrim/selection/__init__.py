"""Choosing the units to remove: ranking under a parameter budget, with safeguards."""
