"""The `seeker-jax` command line: the only layer that imports everything."""
