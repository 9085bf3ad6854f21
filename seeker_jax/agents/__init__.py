"""The agent loop: episodes over the sampler and the tools (GRPO, eval, passk, demo)."""
