"""Checkpoint I/O: orbax checkpoints, HF <-> orbax conversion, parity checks."""
