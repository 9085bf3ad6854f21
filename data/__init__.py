"""seeker-jax."""
