"""Experiment configs (ml_collections): pick one with --config configs/FILE.py:PRESET."""
