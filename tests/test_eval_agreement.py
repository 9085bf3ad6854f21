"""Greedy agreement: the same tiny checkpoint evaluated in-process (rollout engine) and through
`openai:` against our own `seeker-jax serve` gives the same answers on every sample.

Needs seeker_jax.serve (branch `serve`, being built): its expected entry point is
`seeker_jax.serve.start_in_thread(ckpt, host="127.0.0.1", port=0) -> server with .url`
(/v1 base URL) and `.close()`. Skipped while that module is absent.
"""
import importlib.util

import pytest

serve_missing = importlib.util.find_spec("seeker_jax.serve") is None


@pytest.mark.skipif(serve_missing, reason="seeker_jax.serve is not merged yet (branch serve): "
                    "the greedy-agreement check needs our own OpenAI-compatible server")
def test_greedy_agreement_in_process_vs_serve(tmp_path):
    pytest.fail("seeker_jax.serve exists now: write this test against its entry point "
                "(in-process ckpt: eval vs openai: eval of the same ckpt, equal predictions)")
