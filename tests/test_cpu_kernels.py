"""models/cpu_kernels.py: the CPU decode kernel against float64 numpy and XLA's dot, its packed
layout, its errors, and the sampler with and without it (same tokens, log-probs to 1e-5)."""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seeker_jax.models import cpu_kernels

needs_kernel = pytest.mark.skipif(not cpu_kernels.available(),
                                  reason="the kernel needs x86-64 with AVX-512 and a C++ compiler")


@pytest.mark.parametrize("K,N", [(7, 1), (16, 47), (256, 48), (256, 49), (64, 1000)])
def test_pack_unpack_roundtrip(K, N):
    w = np.random.default_rng(0).standard_normal((K, N)).astype(np.float32)
    packed = cpu_kernels.pack(jnp.asarray(w))
    blocks = -(-N // cpu_kernels.BLOCK)
    assert packed.shape == (blocks, K, cpu_kernels.BLOCK)
    # panel b, row k holds w[k, 48b:48b+48], zero past N
    np.testing.assert_array_equal(np.asarray(packed[blocks - 1, K - 1, :N - 48 * (blocks - 1)]),
                                  w[K - 1, 48 * (blocks - 1):])
    assert not np.asarray(packed[blocks - 1, :, N - 48 * (blocks - 1):]).any()
    np.testing.assert_array_equal(np.asarray(cpu_kernels.unpack(packed, N)), w)


def _error(y, x, w):
    ref = x.astype(np.float64) @ w.astype(np.float64)
    return float(np.abs(np.asarray(y, np.float64) - ref).max())


@needs_kernel
@pytest.mark.parametrize("rows", [1, 3, 8, 9, 16, 17])
@pytest.mark.parametrize("K,N", [(1, 5), (7, 49), (256, 1000), (1024, 256), (256, 20_000)])
def test_matmul_matches_float64(rows, K, N):
    """Every row count (the kernel's 8-row passes and their tails), column tails and sizes on
    both sides of the two-thread cut (256 KB of weight). Same error scale as XLA's dot:
    within 2x its distance from float64, plus 1e-6."""
    rng = np.random.default_rng(rows * 1000 + N)
    x = rng.standard_normal((rows, K)).astype(np.float32)
    w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
    packed = cpu_kernels.pack(jnp.asarray(w))
    y = jax.jit(cpu_kernels.matmul, static_argnums=2)(jnp.asarray(x), packed, N)
    assert y.shape == (rows, N) and y.dtype == jnp.float32
    ours, xla = _error(y, x, w), _error(jnp.dot(x, w), x, w)
    assert ours <= 2 * xla + 1e-6, (ours, xla)


@needs_kernel
def test_matmul_leading_dims_and_loop():
    """x (B, 1, K) as a decode step's Linear sees it, inside a while loop (one call per step,
    each depending on the last), equal to the same loop with XLA's dot to 1e-5."""
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((256, 256)) / 16).astype(np.float32)
    x = rng.standard_normal((8, 1, 256)).astype(np.float32)
    packed = cpu_kernels.pack(jnp.asarray(w))

    def run(mm):
        return jax.jit(lambda x: jax.lax.fori_loop(0, 20, lambda i, h: jnp.tanh(mm(h)), x))(x)

    ours = run(lambda h: cpu_kernels.matmul(h, packed, 256))
    ref = run(lambda h: jnp.dot(h, jnp.asarray(w)))
    assert ours.shape == (8, 1, 256)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-5)


@needs_kernel
def test_unpacked_weight_is_a_clear_error():
    w = jnp.ones((256, 48), jnp.float32)  # (K, N): not packed
    with pytest.raises(Exception, match="must be packed"):
        jax.block_until_ready(cpu_kernels.matmul(jnp.ones((8, 256)), w, 48))


@needs_kernel
@pytest.mark.parametrize("H,KVH,D", [(8, 4, 32), (4, 4, 16), (16, 4, 128)])
def test_decode_attention_matches_the_reference(H, KVH, D):
    """One query per row against a head-major cache, read over a window W < S: rows with a
    few, many and no visible slots (the last gets uniform weights, as the reference does),
    GQA groups of 1, 2 and 4. Against attention.cache_attention on the window: <= 1e-5."""
    from seeker_jax.models.qwen3_vl.attention import cache_attention

    B, S, W = 4, 80, 72
    rng = np.random.default_rng(H + D)
    q = jnp.asarray(rng.standard_normal((B, 1, H, D)) * 2, jnp.float32)
    k = jnp.asarray(rng.standard_normal((B, KVH, S, D)), jnp.float32)
    v = jnp.asarray(rng.standard_normal((B, KVH, S, D)), jnp.float32)
    lengths = np.array([1, 37, W, 0])
    mask = jnp.asarray(np.arange(W)[None, None, :] < lengths[:, None, None])
    mask = mask.at[1, 0, 5].set(False)  # a hole, as a padded prompt leaves
    ours = jax.jit(cpu_kernels.decode_attention)(q, k, v, mask)
    ref = cache_attention(q, k[:, :, :W], v[:, :, :W], mask)
    assert ours.shape == (B, 1, H, D)
    err = float(jnp.abs(ours - ref).max())
    assert err <= 1e-5, err
    # the empty row: the mean of the window's values per kv head
    uniform = np.asarray(v[3, :, :W]).mean(1)  # (KVH, D)
    np.testing.assert_allclose(np.asarray(ours[3, 0]).reshape(KVH, H // KVH, D),
                               np.broadcast_to(uniform[:, None], (KVH, H // KVH, D)), atol=1e-5)


@needs_kernel
def test_decode_attention_shape_errors():
    q = jnp.ones((2, 1, 4, 32), jnp.float32)
    k = jnp.ones((2, 2, 16, 32), jnp.float32)
    with pytest.raises(Exception, match="shapes do not agree"):
        jax.block_until_ready(cpu_kernels.decode_attention(q, k, k, jnp.ones((2, 1, 20), bool)))
    assert not cpu_kernels.attention_applies(jnp.ones((2, 3, 4, 32)), k)  # more than 1 query
    assert not cpu_kernels.attention_applies(jnp.ones((2, 1, 4, 24)), k)  # D % 16
    assert not cpu_kernels.attention_applies(q.astype(jnp.bfloat16), k)


def test_switched_off_falls_back_and_says_why(tmp_path):
    """SEEKER_JAX_CPU_KERNELS=0: available() warns and is False; a sampler then uses XLA's dot
    (and the transposed head), and cpu_kernels=True is a clear error naming the reason."""
    code = textwrap.dedent("""
        import warnings, sys
        sys.path.insert(0, "tests")
        from hf_reference import build_hf, tiny_hf_config
        from seeker_jax.models import cpu_kernels
        from seeker_jax.models.qwen3_vl import from_pretrained
        from seeker_jax.sampler import Sampler
        import tempfile
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert not cpu_kernels.available()
        assert any("SEEKER_JAX_CPU_KERNELS=0" in str(w.message) for w in seen), seen
        d = tempfile.mkdtemp(); build_hf(tiny_hf_config()).save_pretrained(d)
        model = from_pretrained(d)
        s = Sampler(model, batch_size=2, max_len=32)
        assert not s.use_cpu_kernels and s.packed is None and s.use_transposed_head
        try:
            Sampler(model, batch_size=2, max_len=32, cpu_kernels=True)
        except ValueError as e:
            assert "not built" in str(e), e
            print("OK")
    """)
    env = dict(os.environ, SEEKER_JAX_CPU_KERNELS="0")
    root = os.path.join(os.path.dirname(__file__), "..")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def test_build_failure_is_reported(tmp_path, monkeypatch):
    """A compiler that fails: available() is False with the compiler's message in the
    warning, not an exception."""
    monkeypatch.setattr(cpu_kernels, "_state", {})
    monkeypatch.setenv("SEEKER_JAX_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    if cpu_kernels.platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86-64 only")
    with pytest.warns(UserWarning, match="failed"):
        assert not cpu_kernels.available()
    assert not list(tmp_path.rglob("*.so"))  # no half-written library left to load


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from hf_reference import save_tiny_hf
    d = str(tmp_path_factory.mktemp("tiny"))
    save_tiny_hf(d)
    return d


@needs_kernel
def test_sampler_with_the_kernel_matches_xla(model_dir):
    """A sampler on the kernel and one on XLA's dot generate the same greedy tokens (text and
    image prompts, batch 8), with log-probs equal to 1e-5; after load_state with changed
    weights both change alike (the packed copy is remade, not stale)."""
    from flax import nnx

    from hf_reference import segment
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.sampler import Sampler
    from seeker_jax.sampling import SamplingParams

    model = from_pretrained(model_dir)
    kw = dict(batch_size=8, max_len=96, decode_steps=8, max_chunk=32, min_bucket=32,
              params=SamplingParams(0.0))
    on, off = Sampler(model, cpu_kernels=True, **kw), Sampler(model, cpu_kernels=False, **kw)
    assert on.use_cpu_kernels and on.packed is not None and not on.use_transposed_head
    assert not off.use_cpu_kernels and off.packed is None
    prompts = [segment([("text", 7), ("image", (4, 6)), ("text", 5)], 1)] + [
        segment([("text", 5 + k)], k + 2) for k in range(7)]

    def both():
        a, b = on.generate(prompts, max_new_tokens=12), off.generate(prompts, max_new_tokens=12)
        for x, y in zip(a, b):
            assert x.ids.tolist() == y.ids.tolist()
            np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5)
        return [x.ids.tolist() for x in a]

    before = both()
    graphdef, state = nnx.split(model)
    nudged = jax.tree.map(lambda a: a * 1.5 if a.ndim == 2 else a, state)
    on.load_state(nudged)
    off.load_state(nudged)
    assert both() != before


def test_sampler_turns_the_kernel_off_where_it_does_not_apply(model_dir):
    """batch_size over MAX_ROWS or bfloat16 weights: off under None, a clear error under
    True."""
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.sampler import Sampler

    model = from_pretrained(model_dir)
    big = Sampler(model, batch_size=cpu_kernels.MAX_ROWS + 1, max_len=32)
    assert not big.use_cpu_kernels and big.packed is None
    with pytest.raises(ValueError, match=f"batch_size {cpu_kernels.MAX_ROWS + 1} > "):
        Sampler(model, batch_size=cpu_kernels.MAX_ROWS + 1, max_len=32, cpu_kernels=True)
    bf16 = from_pretrained(model_dir, dtype=jnp.bfloat16)
    assert not Sampler(bf16, batch_size=2, max_len=32).use_cpu_kernels
    with pytest.raises(ValueError, match="not float32"):
        Sampler(bf16, batch_size=2, max_len=32, cpu_kernels=True)


@needs_kernel
def test_untied_head_is_packed_from_lm_head(tmp_path):
    """An untied model: the packed head is its lm_head kernel; same greedy tokens as XLA."""
    from hf_reference import save_tiny_hf, segment
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.sampler import Sampler
    from seeker_jax.sampling import SamplingParams

    save_tiny_hf(str(tmp_path), tied=False)
    model = from_pretrained(str(tmp_path))
    assert model.lm_head is not None
    kw = dict(batch_size=2, max_len=64, min_bucket=16, params=SamplingParams(0.0))
    on, off = Sampler(model, cpu_kernels=True, **kw), Sampler(model, cpu_kernels=False, **kw)
    np.testing.assert_array_equal(
        np.asarray(cpu_kernels.unpack(on.packed.head, model.config.text.vocab_size)),
        np.asarray(model.lm_head.kernel[...]))
    prompts = [segment([("text", 9)], 3), segment([("text", 4)], 4)]
    for a, b in zip(on.generate(prompts, 10), off.generate(prompts, 10)):
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
