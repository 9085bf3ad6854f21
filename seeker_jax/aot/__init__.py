"""Ahead-of-time compile checks: will a step fit a TPU topology, and what it costs."""
