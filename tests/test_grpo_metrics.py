"""rl.grpo_metrics.by_tool_use against hand-worked numbers, and the claim behind
tools/advantage_with: for a first-token choice, the policy gradient on the tool choice's logit
is the summed advantage of the episodes that took it."""
import jax
import jax.numpy as jnp
import numpy as np

from seeker_jax.rl.advantages import compute_advantages
from seeker_jax.rl.grpo_metrics import by_tool_use


def test_by_tool_use_hand_worked():
    # one group of 4: two tool episodes (rewards 1.0, 0.0), two without (0.5, 0.5)
    used = np.array([True, True, False, False])
    scores = [{"reward": 1.0, "accuracy": 1.0}, {"reward": 0.0, "accuracy": 0.0},
              {"reward": 0.5, "accuracy": 0.0}, {"reward": 0.5, "accuracy": 1.0}]
    adv = np.array([1.0, -1.0, 0.25, 0.25])
    out = by_tool_use(used, scores, adv)
    assert out == {"tools/reward_with": 0.5, "tools/accuracy_with": 0.5,
                   "tools/reward_without": 0.5, "tools/accuracy_without": 0.5,
                   "tools/advantage_with": 0.0}
    # no tool episode: only the side that exists, and an advantage sum of 0
    out = by_tool_use(np.zeros(2, bool), scores[:2], np.array([1.0, -1.0]))
    assert set(out) == {"tools/reward_without", "tools/accuracy_without",
                        "tools/advantage_with"} and out["tools/advantage_with"] == 0.0
    assert "tools/advantage_with" not in by_tool_use(used, scores)


def test_advantage_with_tools_is_the_gradient_on_the_tool_logit():
    """A two-action policy (call a tool / answer) sampled 8 times in one group: the gradient
    of sum_i A_i log pi(a_i) with respect to the tool logit equals the tool episodes' summed
    advantage (GRPO's advantages of a group sum to 0)."""
    rng = np.random.default_rng(0)
    actions = np.array([1, 0, 0, 1, 0, 0, 0, 1])               # 1: called a tool
    rewards = np.where(actions == 1, [0.9, 0, 0, 0.1, 0, 0, 0, 0.8],
                       rng.uniform(0, 1, 8)).astype(np.float64)
    adv = compute_advantages("grpo", rewards, np.zeros(8, int))
    assert abs(adv.sum()) < 1e-6

    def objective(logits):
        logp = jax.nn.log_softmax(logits)
        return jnp.sum(jnp.asarray(adv, jnp.float32) * logp[actions])

    grad = jax.grad(objective)(jnp.array([0.3, -1.2]))        # [answer, tool]
    pushed = by_tool_use(actions == 1, [{"reward": r} for r in rewards], adv)
    np.testing.assert_allclose(float(grad[1]), pushed["tools/advantage_with"] * 8, atol=1e-5)
    np.testing.assert_allclose(float(grad[0]), -float(grad[1]), atol=1e-5)


def test_malformed_calls_are_logged_apart_from_tool_calls():
    from seeker_jax.env.episode import CallRecord
    from seeker_jax.generation.conversation import Conversation
    from seeker_jax.agents.rollout import EpisodeResult
    from seeker_jax.rl.grpo_metrics import episode_metrics

    conv = Conversation(np.zeros(4, np.int32), np.zeros(4, np.int32),
                        np.array([0, 1, 1, 0], np.int32), np.zeros(4, np.float32), [])
    bad = CallRecord(1, "<unparsed>", {"raw": "{"}, 0.0, "tool call is not valid JSON")
    good = CallRecord(1, "view_visual_prompt", {"frame_path": "f.png"}, 0.01, None)
    results = [EpisodeResult(0, conv, ["t"], ["stop_string"], "A", "answer", [bad]),
               EpisodeResult(1, conv, ["t"], ["stop_string"], "A", "answer", [good, bad])]
    out = episode_metrics(results, [{"reward": 1.0}, {"reward": 0.0}])
    # one well-formed call in two episodes; two malformed ones
    assert out["tool_calls_per_episode"] == 0.5 and out["tool_call_rate"] == 0.5
    assert out["malformed_calls_per_episode"] == 1.0
