"""Basic NNX layers with logical axis names and separate parameter / compute dtypes.

Every parameter is an `nnx.Param` whose metadata carries `logical_axes` (one name per array
dimension, e.g. ("embed", "mlp")). Trainers map those names to mesh axes with a rule table;
the model never mentions a mesh. Kernels are stored (in, out), the transpose of torch's
Linear weight; the HF mapping table does the transpose.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


Axes = tuple[str | None, ...]


def param(rngs: nnx.Rngs | None, shape: Sequence[int], axes: Axes, dtype, init: str = "normal",
          std: float = 0.02) -> nnx.Param:
    """A parameter tagged with logical axes; init is "normal" (std), "zeros" or "ones"."""
    shape = tuple(int(s) for s in shape)
    if len(axes) != len(shape):
        raise ValueError(f"logical axes {axes} do not match shape {shape}")
    if init == "zeros":
        value = jnp.zeros(shape, dtype)
    elif init == "ones":
        value = jnp.ones(shape, dtype)
    else:
        value = (std * jax.random.normal(rngs.params(), shape, jnp.float32)).astype(dtype)
    return nnx.Param(value, logical_axes=tuple(axes))


class Linear(nnx.Module):
    """y = x @ kernel (+ bias), computed in `dtype`."""

    def __init__(self, in_features: int, out_features: int, axes: Axes, *, use_bias: bool,
                 dtype, param_dtype, rngs: nnx.Rngs, std: float = 0.02):
        self.kernel = param(rngs, (in_features, out_features), axes, param_dtype, std=std)
        self.bias = (param(rngs, (out_features,), axes[-1:], param_dtype, init="zeros")
                     if use_bias else None)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.dot(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class Embed(nnx.Module):
    """Token (or position) embedding table (num, features)."""

    def __init__(self, num: int, features: int, axes: Axes, *, dtype, param_dtype,
                 rngs: nnx.Rngs, std: float = 0.02):
        self.embedding = param(rngs, (num, features), axes, param_dtype, std=std)
        self.dtype = dtype

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)

    def attend(self, x: jax.Array) -> jax.Array:
        """x @ embedding.T, for a tied LM head."""
        return jnp.dot(x.astype(self.dtype), self.embedding[...].astype(self.dtype).T)


class RMSNorm(nnx.Module):
    """Qwen3 RMSNorm: normalize in float32, cast back, then scale (as transformers does)."""

    def __init__(self, features: int, axes: Axes, *, eps: float, dtype, param_dtype):
        self.weight = param(None, (features,), axes, param_dtype, init="ones")
        self.eps = eps
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        var = jnp.mean(x32 * x32, axis=-1, keepdims=True)
        y = (x32 * jax.lax.rsqrt(var + self.eps)).astype(self.dtype)
        return self.weight[...].astype(self.dtype) * y


class LayerNorm(nnx.Module):
    """LayerNorm with scale and bias; statistics in float32."""

    def __init__(self, features: int, axes: Axes, *, eps: float, dtype, param_dtype):
        self.weight = param(None, (features,), axes, param_dtype, init="ones")
        self.bias = param(None, (features,), axes, param_dtype, init="zeros")
        self.eps = eps
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(self.dtype)


def gelu_tanh(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=True)


def gelu_erf(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)


ACTIVATIONS = {"gelu_pytorch_tanh": gelu_tanh, "gelu": gelu_erf, "silu": jax.nn.silu}


def activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None
