"""Evaluation: the one evaluator (`seeker-jax eval`, the demo's held-out table, `passk`).

readers.py (V2P-Bench, Video-MME, synthetic, records in memory) -> protocols.py (agentic,
answer, v2p_official, videoseeker_official, videomme) -> models.py (ckpt:, hf:, openai:, over
seeker_jax/agents' loops) -> runner.py (evaluate: scored episodes in memory; run_eval:
resumable results.jsonl) -> scoring.py (accuracy, bootstrap CIs) -> report.py (summary.md,
accuracy.png). compare.py (two models on the same questions: table, paired bootstrap),
describe.py (one episode written out), passk.py (the RL split).
"""
