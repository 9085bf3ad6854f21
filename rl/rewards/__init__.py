"""GRPO rewards: one small, pure, registered function each, weighted by a RewardModel.

    from seeker_jax.rl.rewards import RewardConfig, RewardModel, from_episode
    model = RewardModel(RewardConfig.from_config(c.reward))
    scores = model.score([from_episode(r, rec) for r, rec in zip(results, records)])
"""
from seeker_jax.rl.rewards.registry import get_reward, register_reward, registered_rewards
from seeker_jax.rl.rewards.context import (RewardContext, clean_turn, crop_windows, from_episode,
                                           question_form_of)
from seeker_jax.rl.rewards.accuracy import (accuracy, accuracy_mc, accuracy_open,
                                            accuracy_open_rule)
from seeker_jax.rl.rewards.format import format_official, format_paper, official_format_ok
from seeker_jax.rl.rewards.tools import interval_iou, parsimony, temporal_iou
from seeker_jax.rl.rewards.judge import Judge, JudgeCache, parse_judgement, judge_messages
from seeker_jax.rl.rewards.model import (COMPONENTS, JudgeConfig, RewardConfig, RewardModel,
                                         summarize)

__all__ = ["COMPONENTS", "Judge", "JudgeCache", "JudgeConfig", "RewardConfig", "RewardContext",
           "RewardModel", "accuracy", "accuracy_mc", "accuracy_open", "accuracy_open_rule",
           "clean_turn", "crop_windows", "format_official", "format_paper", "from_episode",
           "get_reward", "interval_iou", "judge_messages", "official_format_ok", "parsimony",
           "parse_judgement", "question_form_of", "register_reward", "registered_rewards",
           "summarize", "temporal_iou"]
