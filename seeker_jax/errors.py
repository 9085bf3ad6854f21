"""The one exception type for user mistakes, and how the CLI tells them from bugs.

A `UserError` is something the person at the keyboard can fix: a config key misspelt, a preset
that does not exist, a count below 1, a record file without the fields we need. The CLI prints
it as one line, `error: <message>`, and exits 2; a traceback is for bugs (and `--debug`).
Its message names the thing that was wrong and says what to do.

This module is a leaf (no project imports), so every layer may raise `UserError`. Layers
below the core that keep their own types (models' `ConfigError` and `CheckpointError`, the
AOT check's `AotError`, data's `RecordError` and `MissingSplitError`) are recognized by
`is_user_error` at the CLI edge instead, so models/ keeps importing nothing of the project.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for; the message says what was wrong and what to do."""


# Exception types of the lower layers that only ever describe bad input: "module:Name".
# Looked up by name, so that checking an error imports nothing (the CLI's error path must not
# import jax just to classify a mistake).
_USER_ERROR_TYPES = (
    "seeker_jax.models.qwen3_vl.config:ConfigError",
    "seeker_jax.models.qwen3_vl.safetensors_io:CheckpointError",
    "seeker_jax.aot.fit:AotError",
    "seeker_jax.data.schema:RecordError",
    "seeker_jax.data.records:MissingSplitError",
)


def is_user_error(error: BaseException) -> bool:
    """Whether `error` reports bad input (print one line) rather than a bug (show the traceback)."""
    if isinstance(error, UserError):
        return True
    for cls in type(error).__mro__:
        if f"{cls.__module__}:{cls.__qualname__}" in _USER_ERROR_TYPES:
            return True
    return False
