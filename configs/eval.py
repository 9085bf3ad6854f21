"""Evaluation (`seeker-jax eval --config configs/eval.py:PRESET --model ... --data FILE`).

Presets (seeker_jax/eval/protocols.py states each one's source):
  agentic               our environment: the checkpoint's saved env (or c.env), tools, rounds
  v2p_official          V2P-Bench's inference: no tools, 64 frames <= 336x336 px, the prompt
                        frame(s) after the question, greedy, 64 new tokens, first character
  videoseeker_official  VideoSeeker's public eval on V2P: its prompt, view_visual_prompt only,
                        frames as images after `<t seconds>`, first letter in the first <answer>
  videomme              Video-MME's prompt ("... The best answer is:"), its letter extraction
  answer                our records (data_format synthetic): our environment, the <answer>
                        judged by env/grading.py (what the demo and passk score)
c.env applies when the model has no saved env config (hf:, openai:), or always with
c.use_saved_env = False; protocol presets set the parts of it they fix (frames, profile).
"""
import ml_collections

from seeker_jax.configs.env import _sampling, env_group


def get_config(preset: str = "agentic") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.protocol = preset
    c.data_format = "v2p"        # v2p | videomme | synthetic (seeker_jax/eval/readers.py)
    c.env = env_group("paper")
    c.use_saved_env = True       # ckpt: models replay their training environment
    c.batch_size = 8             # episodes in flight (sampler rows / HTTP requests)
    c.max_len = 32768            # tokens per sampler row
    c.max_new_tokens = 0         # 0: the protocol's (64 official, 1024 agentic)
    c.tool_mode = "text"         # openai: tools as hermes text ("text") or the tools parameter
    c.video_mode = "frames"      # openai: videos as a lossless frame list ("frames"), vLLM's
                                 # data:video/jpeg ("jpeg"), or timestamped images ("images")
    c.tool_role = "tool"         # openai: tool results as role "tool", or "user" messages
    c.resamples = 2000           # bootstrap resamples
    c.viewer_mb = 8.0            # episodes.html: MiB of embedded images (thumbnails, plots);
                                 # past it the page shows text only and says so; -1: no page
    if preset == "agentic":
        pass
    elif preset == "answer":
        c.data_format = "synthetic"
    elif preset == "v2p_official":
        c.use_saved_env = False
        c.data_format = "v2p"
        # nframes=64 at max_pixels 336*336 (qwen-vl-utils); the frame image at the processor's
        # min / max pixels (256*28*28, 8192*28*28) of infer_qwen2.5-vl.py
        c.env.video = _sampling(1000.0, 64, 64, 4096, 336 * 336, 64 * 336 * 336)
        c.env.frame.min_pixels, c.env.frame.max_pixels = 256 * 28 * 28, 8192 * 28 * 28
    elif preset == "videoseeker_official":
        c.use_saved_env = False
        # single_inference.py: 1 fps, up to 512 frames at <= 200,704 px, 5 tool rounds
        c.env.video = _sampling(1.0, 4, 512, 4096, 200_704, 512 * 200_704)
        c.env.max_rounds = 5
    elif preset == "videomme":
        c.use_saved_env = False
        c.data_format = "videomme"
        c.env.video = _sampling(1.0, 4, 64, 4096, 336 * 336, 64 * 336 * 336)
    else:
        raise ValueError(f"configs/eval.py: unknown preset {preset!r}; use agentic, answer, "
                         "v2p_official, videoseeker_official or videomme")
    return c
