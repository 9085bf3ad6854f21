"""The tiny GRPO setup that test_grpo and its child processes share (a test helper, not a
test module): configs/grpo.py:tiny_synth on a given world, and the script that forces half
of each group to answer, so rewards differ inside every group."""
import os

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 2  # samples per prompt
ANSWER = "<think>done</think><answer>A</answer>"


def grpo_config(root: str, steps: int = 4):
    from seeker_jax.config import load_config

    return load_config(os.path.join(ROOT_DIR, "configs", "grpo.py") + ":tiny_synth", [
        f"--config.data.root={root}", f"--config.steps={steps}", "--config.checkpoint_every=2",
        f"--config.rollout.n={N}", "--config.rollout.prompts_per_step=2",
        "--config.rollout.max_new_tokens=16", "--config.rollout.max_turns=2",
        "--config.optimizer.lr=1e-3"])


def script(episode: int, turn: int):
    """A forced first turn for the first episode of each group (a well-formed answer "A")."""
    return ANSWER if episode % N == 0 and turn == 0 else None
