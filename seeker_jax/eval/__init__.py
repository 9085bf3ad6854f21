"""Evaluation (`seeker-jax eval`): benchmark readers, named protocols, model backends, one runner.

readers.py (V2P-Bench, Video-MME, synthetic) -> protocols.py (agentic, v2p_official,
videoseeker_official, videomme) -> models.py (ckpt:, hf:, openai:) -> runner.py (resumable,
results.jsonl) -> scoring.py (accuracy, bootstrap CIs) -> report.py (summary.md, accuracy.png).
"""
