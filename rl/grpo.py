"""The GRPO learner: `seeker-jax grpo --config configs/grpo.py:PRESET --workdir W`.

One iteration:
  1. take prompts_per_step records from the prompt iterator (Grain, sharded by process);
  2. roll out n episodes per record through the jitted sampler (rl.rollout: tools on host
     threads, the prompt built, encoded and prefilled once per group), seeded by
     rollout_seed(seed, iteration, process): every token's key folds in (seed, episode, token);
  3. score them on the host (rl.rewards.RewardModel: judge calls batched and concurrent);
  4. group advantages (rl.advantages), optional DAPO filters (dynamic sampling drops groups
     whose rewards are all equal and refills the batch with new prompts, up to
     rollout.max_refills rounds; overlong filtering masks episodes cut by the length limit);
  5. minibatches * epochs optimizer steps of the GRPO loss (rl.policy_loss) through the same
     jitted train step as SFT, on the same (data, fsdp, tensor) mesh; with more than one
     update, the old log-probs are recomputed by the learner first; with kl_coef > 0 the
     frozen reference (the init_from model) scores every minibatch once;
  6. the sampler loads the new weights; metrics; a checkpoint at this rollout boundary.

Exact resume: the checkpoint holds params, optimizer state, the optimizer step, the prompt
iterator's state, the RNG and the iteration (which fixes the rollout seed); the reference is
rebuilt from its source (init_from, or the seeded random init). A run killed and resumed gives
the rewards, losses and params of an uninterrupted one; metrics.jsonl keeps each step once.

Workdir:
  config.json, metrics.jsonl (rl.grpo_metrics), tb/, reward.png, tools.png (rl.plots),
  episodes/iteration_<N>.html (a few sampled episodes; rl.grpo_episodes),
  checkpoints/{model_config,env_config}.json, checkpoints/<iteration>/{params,opt_state,data,
  meta,grpo}; `seeker-jax export --ckpt W` reads the params as after SFT.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from seeker_jax.checkpointing import checkpoint as ckpt
from seeker_jax.config import to_json
from seeker_jax.env.config import EnvConfig
from seeker_jax.env.episode import Episode
from seeker_jax.env.records import SampleRecord
from seeker_jax.models.tokenizer import tokenizer_from_config
from seeker_jax.training.optim import make_optimizer, make_schedule
from seeker_jax.rl.advantages import compute_advantages, dynamic_sampling_keep, overlong_mask
from seeker_jax.rl.grpo_batch import episodes_batch, minibatch_slices, turn_loss_len
from seeker_jax.rl.grpo_episodes import log_episodes
from seeker_jax.rl.grpo_checks import (check_config, check_host_memory, check_skips,
                                       projection_bytes)
from seeker_jax.rl.grpo_metrics import episode_metrics, mean_update_metrics
from seeker_jax.rl.policy_loss import PolicyLossConfig, make_grpo_loss, reference_logprobs
from seeker_jax.rl.rewards import RewardConfig, RewardModel, from_episode
from seeker_jax.agents.rollout import (SKIP_REASONS, Rollout, RolloutConfig, Script,
                                      env_sampler, suppressed_ids)
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.data.synth import prepare_data
from seeker_jax.sharding import make_mesh, model_shardings, rules_from_config
from seeker_jax.training.train_state import TrainState, create_train_state, make_train_step, place_batch
from seeker_jax.training.trainer import (JsonItem, MetricsWriter, build_model, mesh_context, under_mesh,
                                maybe_initialize_distributed, open_manager, resolve_mesh_shape,
                                restore_latest, save_checkpoint, state_items)

GRPO_ITEM = "grpo"  # the checkpoint item with the iteration and the reference's source


@dataclasses.dataclass
class Iteration:
    """What on_step sees after an iteration: its number, the learner state, the sampler (with
    the new weights loaded), the episodes and their scores, and the row logged."""

    iteration: int
    state: TrainState
    sampler: Sampler
    results: list
    scores: list[dict[str, float]]
    metrics: dict[str, float]


def rollout_seed(seed: int, iteration: int, process: int = 0, refill: int = 0) -> int:
    """The sampler seed of one iteration's rollout round (0, then each refill) on one process:
    a pure function of the four, so a resumed run draws the same tokens."""
    entropy = [seed, iteration, process] + ([refill] if refill else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)


@dataclasses.dataclass
class Collected:
    """One iteration's training episodes: prompts_per_step groups of n (results, their records,
    reward contexts and scores, in group order), keep (N,) (False: a group dynamic sampling
    could not replace, or a stand-in for a skipped one, which then learns nothing), filler (N,)
    (True: a masked copy of a kept group standing in for a skipped prompt, left out of the
    metrics), the groups dropped, the refill rounds, and the prompts rolled out and skipped
    (by why: seeker_jax.agents.rollout's SKIP_REASONS) over all rounds."""

    results: list
    records: list[dict]
    contexts: list
    scores: list[dict[str, float]]
    keep: np.ndarray
    stats: Any
    dropped: int = 0
    refills: int = 0
    reward_s: float = 0.0
    filler: np.ndarray | None = None
    prompts: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def real(self) -> np.ndarray:
        """(N,) bool: the episodes that were rolled out for this batch (not filler)."""
        return ~self.filler if self.filler is not None else np.ones(len(self.results), bool)


def merge_stats(total, part):
    """Adds one rollout round's RolloutStats into `total` (None: the first round)."""
    if total is None:
        return part
    for f in dataclasses.fields(part):
        a, b = getattr(total, f.name), getattr(part, f.name)
        setattr(total, f.name, a + b)
    return total


def collect(take: Callable[[int], list[dict]], rollout: Rollout, rewards: RewardModel,
            make_episode: Callable[[dict], Any], config: ml_collections.ConfigDict,
            loss: PolicyLossConfig, iteration: int) -> Collected:
    """Rolls out and scores prompts_per_step groups. A group with a skipped episode (a bad
    sample: the rollout's `skipped`) is dropped and counted; with dynamic sampling, so are the
    groups whose rewards are all equal (DAPO). Either way more rounds of prompts_per_step
    prompts refill the batch, up to rollout.max_refills, until prompts_per_step groups are
    usable (informative). The batch keeps its shape: kept groups first, then (if refills ran
    out) dropped ones, masked, then masked copies of kept groups standing in for skipped
    prompts. Every process runs the same number of rounds (multi-host steps are collective)."""
    r = config.rollout
    kept: list[tuple] = []      # (results, records, contexts, scores) of one group
    spare: list[tuple] = []
    stats, dropped, reward_s, refill, prompts = None, 0, 0.0, 0, 0
    skipped: dict[str, int] = {}
    while True:
        records = take(r.prompts_per_step)
        prompts += len(records)
        per_episode = [rec for rec in records for _ in range(r.n)]
        results, part = rollout.run([make_episode(rec) for rec in per_episode], group_size=r.n,
                                    seed=rollout_seed(config.seed, iteration,
                                                      jax.process_index(), refill))
        stats = merge_stats(stats, part)
        groups = []
        for g in range(r.prompts_per_step):
            part_g = slice(g * r.n, (g + 1) * r.n)
            why = next((res.skipped for res in results[part_g] if res.skipped), None)
            if why is None:
                groups.append((results[part_g], per_episode[part_g]))
            else:
                skipped[why] = skipped.get(why, 0) + 1
        t = time.perf_counter()
        contexts = [[from_episode(res, rec) for res, rec in zip(*group)] for group in groups]
        flat = rewards.score([c for cs in contexts for c in cs])
        reward_s += time.perf_counter() - t
        for i, (group, ctxs) in enumerate(zip(groups, contexts)):
            scores = flat[i * r.n:(i + 1) * r.n]
            reward = np.array([sc["reward"] for sc in scores], np.float64)
            informative = (not loss.dynamic_sampling
                           or bool(dynamic_sampling_keep(reward, np.zeros(r.n, int))[0]))
            (kept if informative else spare).append((*group, ctxs, scores))
            dropped += int(not informative)
        if not anywhere(len(kept) < r.prompts_per_step) or refill >= r.max_refills:
            break
        refill += 1
    chosen = (kept + spare)[:r.prompts_per_step]
    if not chosen:
        raise ValueError(
            f"GRPO iteration {iteration}: every one of its {prompts} prompts was skipped as a "
            f"bad sample ({', '.join(f'{k}: {v}' for k, v in sorted(skipped.items()))}), "
            f"refills included: the data is broken; the log names the records")
    missing = r.prompts_per_step - len(chosen)
    filler = [chosen[i % len(chosen)] for i in range(missing)]  # stand-ins, masked
    keep = np.repeat([i < len(kept) for i in range(len(chosen))] + [False] * missing, r.n)
    fill = np.repeat([False] * len(chosen) + [True] * missing, r.n)
    results, records, contexts, scores = (sum((list(g[i]) for g in chosen + filler), [])
                                          for i in range(4))
    return Collected(results=results, records=records, contexts=contexts, scores=scores,
                     keep=keep, stats=stats, dropped=dropped, refills=refill,
                     reward_s=reward_s, filler=fill, prompts=prompts, skipped=skipped)


def prompt_iterator(root: str, config: ml_collections.ConfigDict):
    """Records of the RL split in a seeded, reshuffled-per-epoch, endless order (paths kept
    relative to root); its get_state() goes into every checkpoint."""
    from seeker_jax.data.records import make_dataset

    return iter(make_dataset(root, config.data.split, seed=config.seed, num_epochs=None,
                             resolve=False))


def build_reference(config: ml_collections.ConfigDict, mesh, rules):
    """(graphdef, state) of the frozen reference: the init_from model (or the same seeded
    random init), placed like the learner."""
    from flax import nnx

    model, _ = build_model(config.model, rules)
    shardings = model_shardings(model, mesh, rules)
    nnx.update(model, jax.tree.map(lambda v, s: jax.device_put(v[...], s), nnx.state(model),
                                   shardings, is_leaf=lambda x: isinstance(x, nnx.Variable)))
    return nnx.split(model)


def anywhere(flag: bool) -> bool:
    """True if `flag` is True on any process (every process must call it)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.array([flag]))).any())


def train(config: ml_collections.ConfigDict, workdir: str, *, stop_after: int | None = None,
          progress: bool = True, on_step: Callable[[Iteration], None] | None = None,
          script: Script | None = None) -> list[dict[str, Any]]:
    """Runs (or resumes) GRPO; returns the metric rows logged by this call.

    script(episode, turn): text each turn must start with (rl.rollout.Script), for tests
    whose random model needs some well-formed answers; episode is the index in its iteration.
    stop_after: leave after that many iterations of this call (a simulated kill, for tests).
    on_step(Iteration): called after each iteration (metrics written, checkpoint started).
    """
    from tqdm import tqdm

    maybe_initialize_distributed()
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(to_json(config))
    loss_cfg = PolicyLossConfig.from_config(config.loss)
    check_config(config, loss_cfg)
    r = config.rollout
    root = prepare_data(config, workdir, writer=jax.process_index() == 0)
    mesh = make_mesh(resolve_mesh_shape(config.mesh, jax.device_count()))
    rules = rules_from_config(config.mesh.rules)
    env = EnvConfig.from_config(config.env)
    model_dir = ckpt.find_params(config.model.init_from).config_dir if config.model.init_from else None
    tokenizer = tokenizer_from_config(config.tokenizer, model_dir)
    # One field feeds both: the sampler masks these ids and so do the learner, the reference
    # and the old log-prob passes (one distribution for TIS and the logged gap).
    loss_cfg = dataclasses.replace(loss_cfg, suppress_ids=suppressed_ids(tokenizer,
                                                                         r.suppress_ids))
    model, cfg = build_model(config.model, rules)
    if jax.default_backend() == "cpu":
        check_host_memory(config, loss_cfg, cfg.text.vocab_size,
                          os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    tx = make_optimizer(config.optimizer)
    schedule = make_schedule(config.optimizer)
    state = create_train_state(model, tx, mesh, config.model.freeze_vision, rules)
    train_step = under_mesh(make_train_step(tx, make_grpo_loss(loss_cfg)), mesh,
                            cfg.attention_impl)
    reference = build_reference(config, mesh, rules) if loss_cfg.needs_reference else None
    data_iter = prompt_iterator(root, config)
    rng = jax.random.key(config.seed)

    manager = open_manager(workdir, cfg, config.keep_checkpoints, assets_from=model_dir,
                           env=env, tokenizer=config.tokenizer)
    _, rng, restored = restore_latest(manager, state, data_iter, rng, config.model.freeze_vision,
                                      extra={GRPO_ITEM: JsonItem()})
    iteration = int(restored[GRPO_ITEM]["iteration"]) if restored else 0
    # prompts rolled out and skipped (by why) since the run began: the skip limit's count
    seen = {"prompts": int(restored[GRPO_ITEM].get("prompts", 0)) if restored else 0,
            "skipped": dict(restored[GRPO_ITEM].get("skipped", {})) if restored else {}}
    writer = MetricsWriter(workdir, resume_step=iteration)

    params = SamplingParams(r.temperature, r.top_k, r.top_p, loss_cfg.suppress_ids)
    # The sampler on the learner's mesh and rules: weights placed like the learner's, the KV
    # cache's rows over the batch axes.
    sampler = env_sampler(state.model(), tokenizer,
                          batch_size=r.batch_size or r.prompts_per_step * r.n, max_len=r.max_len,
                          params=params, decode_steps=r.decode_steps, max_chunk=r.max_chunk,
                          mesh=mesh, rules=rules)
    rollout = Rollout(sampler, RolloutConfig(r.max_new_tokens, r.max_turns, r.num_workers,
                                             r.max_response_tokens, skip_bad_samples=True),
                      script, lambda text: tokenizer.encode(text, add_special_tokens=False))
    rewards = RewardModel(RewardConfig.from_config(config.reward))
    formatter, episode_config = env.formatter(tokenizer), env.episode_config()

    def make_episode(rec: dict) -> Episode:
        return Episode(SampleRecord.from_dict(rec), formatter, root, episode_config)

    source = config.model.init_from or f"random init of configs/qwen3_vl.py:{config.model.size}"

    logged: list[dict[str, Any]] = []
    end = config.steps if stop_after is None else min(config.steps, iteration + stop_after)
    bar = tqdm(total=config.steps, initial=iteration, desc="grpo", disable=not progress)
    while iteration < end:
        t0 = time.perf_counter()
        batch = collect(lambda k: [next(data_iter) for _ in range(k)], rollout, rewards,
                        make_episode, config, loss_cfg, iteration)
        results, scores, stats = batch.results, batch.scores, batch.stats
        seen["prompts"] += batch.prompts
        for why, count in batch.skipped.items():
            seen["skipped"][why] = seen["skipped"].get(why, 0) + count
        t2 = time.perf_counter()
        reward = np.array([s["reward"] for s in scores], np.float64)
        groups = np.repeat(np.arange(r.prompts_per_step), r.n)
        advantages = compute_advantages(loss_cfg.advantage, reward, groups,
                                        **loss_cfg.advantage_params)
        keep = batch.keep.copy()
        if loss_cfg.overlong_filter:
            keep &= overlong_mask([c.truncated for c in batch.contexts]) > 0

        rng, _ = jax.random.split(rng)
        updates: list[dict] = []
        times = {"logprobs_s": 0.0, "optimizer_s": 0.0, "skipped_optimizer_steps": 0.0}
        t3 = t2
        if anywhere(bool(keep.any())):
            updates = update(state, train_step, results, advantages, keep, config, loss_cfg,
                             mesh, rules, reference, times)
            t3 = time.perf_counter()
            sampler.load_state(state)  # the next rollout samples the new policy
            jax.block_until_ready(sampler.state)
        t4 = time.perf_counter()
        iteration += 1

        real = batch.real
        row = {**episode_metrics([x for x, k in zip(results, real) if k],
                                 [x for x, k in zip(scores, real) if k], advantages[real]),
               **mean_update_metrics(updates),
               "dropped_groups": float(batch.dropped), "refills": float(batch.refills),
               "prompts": float(batch.prompts),
               "skipped_prompts": float(sum(batch.skipped.values())),
               **{f"skipped/{why}": float(batch.skipped.get(why, 0)) for why in SKIP_REASONS},
               "optimizer_step": float(state.step),
               "lr": float(schedule(max(state.step - 1, 0) // config.optimizer.accum_steps)),
               "rollout_s": stats.wall_s, "prefill_s": stats.prefill_s,
               "decode_s": stats.decode_s, "tool_wait_s": stats.wait_tools_s,
               "reward_s": batch.reward_s, "update_s": t3 - t2, **times, "refresh_s": t4 - t3,
               "iteration_s": t4 - t0}
        if iteration % config.log_every == 0 or iteration == config.steps:
            writer.write(iteration, row)
            logged.append({"step": iteration, **row})
            if jax.process_index() == 0 and (iteration % config.plot_every == 0
                                             or iteration == config.steps):
                from seeker_jax.rl.plots import write_plots
                write_plots(workdir)
        if jax.process_index() == 0 and config.viewer_every > 0 and (
                iteration % config.viewer_every == 0 or iteration == config.steps):
            log_episodes(batch, advantages, iteration=iteration, seed=config.seed,
                         k=config.viewer_episodes, group_size=r.n, root=root,
                         config=episode_config, workdir=workdir, writer=writer,
                         max_bytes=int(config.viewer_mb * 2**20))
        check_skips(seen, r.max_skip_fraction, iteration)
        if iteration % config.checkpoint_every == 0 or iteration == config.steps:
            save_checkpoint(manager, iteration, {
                **state_items(state, data_iter, state.step, rng),
                GRPO_ITEM: JsonItem({"iteration": iteration, "reference": source, **seen})})
        if on_step is not None:
            on_step(Iteration(iteration, state, sampler, results, scores, row))
        bar.update(1)
        bar.set_postfix(reward=f"{row['reward']:.3f}")
    bar.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
    return logged


def score_minibatches(state: TrainState, results, advantages: np.ndarray, keep: np.ndarray,
                      config: ml_collections.ConfigDict, loss_cfg: PolicyLossConfig, mesh, rules,
                      reference) -> list[tuple[dict, Any]]:
    """Each minibatch collated and placed once, scored by the reference (kl_coef > 0) and,
    with several updates, by the learner before any of them (old log-probs)."""
    r = config.rollout
    model = state.model()
    placed = []
    for part in minibatch_slices(len(results), r.minibatches):
        batch = episodes_batch([res.conversation for res in results[part]], advantages[part],
                               r.buckets, keep[part], turn_loss_len(r.max_new_tokens))
        arrays, vision = place_batch(batch, model, mesh, rules)
        if reference is not None:
            arrays["ref_logprobs"] = reference_logprobs(reference[0], reference[1:], arrays,
                                                        vision, **loss_cfg.scoring)
        if r.minibatches * r.epochs > 1:
            arrays["old_logprobs"] = reference_logprobs(
                state.graphdef, (state.trainable, state.frozen, state.rest), arrays, vision,
                **loss_cfg.scoring)
        placed.append((arrays, vision))
    return placed


def learning_minibatches(results, keep: np.ndarray, minibatches: int) -> list[bool]:
    """Per minibatch: does any of its episodes have a learned token (kept, policy tokens)?
    The same answer on every process (multi-host steps are collective)."""
    out = []
    for part in minibatch_slices(len(results), minibatches):
        mine = any(bool(k) and int(np.sum(res.conversation.policy_mask)) > 0
                   for res, k in zip(results[part], keep[part]))
        out.append(anywhere(mine))
    return out


def update(state: TrainState, train_step, results, advantages: np.ndarray, keep: np.ndarray,
           config: ml_collections.ConfigDict, loss_cfg: PolicyLossConfig, mesh, rules,
           reference, times: dict[str, float] | None = None) -> list[dict]:
    """The iteration's optimizer steps: score_minibatches, then epochs passes over the
    minibatches. An optimizer step (accum_steps minibatches) none of whose minibatches has a
    learned token is not taken: AdamW would still move the weights (momentum, weight decay)
    on a zero gradient. Returns each step's metrics; adds the seconds spent on batching +
    reference / old log-probs ("logprobs_s") and on the optimizer steps ("optimizer_s") to
    `times`, and the optimizer steps skipped so ("skipped_optimizer_steps")."""
    t0 = time.perf_counter()
    with mesh_context(mesh, state.model().config.attention_impl):
        placed = score_minibatches(state, results, advantages, keep, config, loss_cfg, mesh,
                                   rules, reference)
    jax.block_until_ready([a for a, _ in placed])
    t1 = time.perf_counter()
    learns = learning_minibatches(results, keep, config.rollout.minibatches)
    accum = int(config.optimizer.accum_steps)
    steps, skipped = [], 0
    for _ in range(config.rollout.epochs):
        for first in range(0, len(placed), accum):
            if not any(learns[first:first + accum]):
                skipped += 1
                continue
            for arrays, vision in placed[first:first + accum]:
                steps.append(jax.device_get(train_step(state, arrays, vision)))
    if times is not None:
        times["logprobs_s"] = times.get("logprobs_s", 0.0) + t1 - t0
        times["optimizer_s"] = times.get("optimizer_s", 0.0) + time.perf_counter() - t1
        times["skipped_optimizer_steps"] = times.get("skipped_optimizer_steps", 0.0) + skipped
    return steps


__all__ = ["GRPO_ITEM", "Collected", "Iteration", "build_reference", "check_config", "check_skips",
           "check_host_memory", "collect", "learning_minibatches", "projection_bytes",
           "merge_stats", "prompt_iterator", "rollout_seed", "score_minibatches", "train",
           "update"]
