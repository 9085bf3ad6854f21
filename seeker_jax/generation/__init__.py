"""Generation: the jitted sampler, token sampling, decode steps, conversations."""
