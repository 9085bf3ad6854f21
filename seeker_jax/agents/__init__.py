"""Agents: episodes of our environment played by a model, whoever runs them.

rollout.py  the agent loop over the jitted sampler (GRPO, eval's ckpt:/hf:, passk, the demo)
chat.py     the agent loop over a chat API (eval's openai:, the teacher)
policy.py   a checkpoint as (model, tokenizer, env) and the rollout engine for it
teacher.py  teacher trajectories: rejection sampling through chat.py (`seeker-jax trajectories`)
testing.py  a synthetic episode for rollout tests and bench/rollout.py
"""
