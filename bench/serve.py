"""`seeker-jax serve` speed: requests/s and tokens/s at 1, 4 and 16 concurrent clients, time to
first token (streaming), and prefill tokens per turn of a 5-turn agent conversation with and
without the conversation cache. Tiny random model unless --model is given. Prints figures;
not a test (measure on a quiet machine).

    python bench/serve.py --requests 32 --max-tokens 32
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import openai  # noqa: E402


def tiny_checkpoint(out: str) -> str:
    from seeker_jax.checkpointing.tiny import save_tiny_checkpoint

    return "ckpt:" + save_tiny_checkpoint(out, scale=1.0)


def load(client, model, clients: int, requests: int, max_tokens: int) -> dict:
    def one(k: int):
        t0 = time.perf_counter()
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"Tell me about item {k}."}],
            max_tokens=max_tokens, temperature=0, stream=True,
            stream_options={"include_usage": True})
        ttft, tokens = None, 0
        for chunk in stream:
            if ttft is None and chunk.choices and chunk.choices[0].delta.content:
                ttft = time.perf_counter() - t0
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        return ttft or (time.perf_counter() - t0), tokens

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        out = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    ttfts = sorted(t for t, _ in out)
    return dict(clients=clients, req_s=requests / wall, tok_s=sum(n for _, n in out) / wall,
                ttft_p50_ms=1e3 * ttfts[len(ttfts) // 2])


def agent_conversation(client, model, turns: int, max_tokens: int) -> list[int]:
    """Prefill tokens per turn: prompt tokens minus the cached ones (usage's cached_tokens)."""
    msgs = [{"role": "user", "content": "Find the red car in the video and describe it."}]
    out = []
    for t in range(turns):
        res = client.chat.completions.create(model=model, messages=msgs, temperature=0,
                                             max_tokens=max_tokens)
        u = res.usage
        out.append(u.prompt_tokens - u.prompt_tokens_details.cached_tokens)
        msgs += [res.choices[0].message.model_dump(exclude_none=True),
                 {"role": "user", "content": f"Tool result {t}: frames 1-4 show a car turning."}]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="ckpt:PATH or hf:PATH (default: tiny random)")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--clients", default="1,4,16")
    args = p.parse_args()
    from seeker_jax.serve.loading import ServeConfig
    from seeker_jax.serve.testing import serve_in_thread

    with tempfile.TemporaryDirectory() as tmp:
        spec = args.model or tiny_checkpoint(tmp)
        for cache in (True, False):
            cfg = ServeConfig(model_name="bench", batch_size=args.batch_size, max_len=2048,
                              prefix_cache=cache)
            with serve_in_thread(spec, config=cfg) as server:
                client = openai.OpenAI(base_url=server.url, api_key="none", timeout=600)
                if cache:
                    load(client, "bench", 1, 2, 4)  # compile
                    for n in (int(x) for x in args.clients.split(",")):
                        r = load(client, "bench", n, args.requests, args.max_tokens)
                        print(f"clients {r['clients']:3d}: {r['req_s']:.2f} req/s, "
                              f"{r['tok_s']:.1f} tok/s, TTFT p50 {r['ttft_p50_ms']:.0f} ms")
                per_turn = agent_conversation(client, "bench", 5, args.max_tokens)
                print(f"5-turn conversation, cache {'on ' if cache else 'off'}: prefill tokens "
                      f"per turn {per_turn} (total {sum(per_turn)})")


if __name__ == "__main__":
    main()
