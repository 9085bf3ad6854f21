"""Per-sample sandbox: a tool reads only its own sample's video and visual-prompt frame.

A path the model writes is never opened, stat'ed or resolved. It is compared, as a string, with
the names under which the sample's assets were shown (the record's path, its basename, its
absolute path) and the asset's kind (`video`, `frame`): a sandbox holds one sample's assets
only, so the kind names one file as surely as its path does, and a small model (the demo's
teacher) can call `crop_video("video", ...)` without copying a long path from the prompt.
Anything else (`../`, other absolute paths, other samples' files, URLs, NUL bytes,
non-strings) is refused with a message for the model. The assets themselves are checked
once, when the sandbox is built: a symlink that leads out of the dataset root is refused.
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


class SandboxError(Exception):
    """A refused path; the message goes to the model."""


@dataclass(frozen=True)
class Asset:
    """One file of a sample. `shown` is the name the model saw; `real` is what tools open."""

    kind: str
    shown: str
    real: Path | None
    problem: str = ""

    def names(self) -> set[str]:
        """Every string that names this asset: shown path, its basename, real path, kind."""
        names = {_normal(self.shown), posixpath.basename(_normal(self.shown)), self.kind}
        if self.real is not None:
            names.add(str(self.real))
        return names


def _normal(path: str) -> str:
    """String-only normalization: collapses `./` and duplicate slashes; never touches disk."""
    norm = posixpath.normpath(path.replace("\\", "/"))
    return norm[2:] if norm.startswith("./") else norm


def _check_inside(kind: str, shown: str, path: Path, root: Path) -> Asset:
    real = Path(os.path.realpath(path))
    root_real = Path(os.path.realpath(root))
    if root_real != real and root_real not in real.parents:
        return Asset(kind, shown, None, f"{kind} '{shown}' leads outside the dataset root")
    return Asset(kind, shown, real)


class Sandbox:
    """The assets of one sample, by kind ("video", "frame")."""

    def __init__(self, root: str | os.PathLike, assets: dict[str, str]):
        self.root = Path(root)
        self.assets: dict[str, Asset] = {}
        for kind, shown in assets.items():
            path = Path(shown) if os.path.isabs(shown) else self.root / shown
            self.assets[kind] = _check_inside(kind, shown, path, self.root)

    def shown_name(self, kind: str) -> str:
        return self.assets[kind].shown

    def resolve(self, kind: str, requested: object, tool: str, arg: str) -> Path:
        """The real path of this sample's `kind` asset if `requested` names it; else SandboxError.

        Only the asset's own path is returned; `requested` is used for comparison alone.
        """
        asset = self.assets.get(kind)
        expect = f"use '{asset.shown}'" if asset else f"this sample has no {kind}"
        if not isinstance(requested, str):
            raise SandboxError(f"{tool}: {arg} must be a string path; {expect}")
        if not requested.strip() or "\x00" in requested:
            raise SandboxError(f"{tool}: {arg} is empty or has a NUL byte; {expect}")
        if _URL.match(requested) and not re.match(r"^[a-zA-Z]:[\\/]", requested):
            raise SandboxError(f"{tool}: {arg} '{requested[:80]}' is a URL; only this sample's "
                               f"files can be read; {expect}")
        norm = _normal(requested.strip())
        if asset is None:
            raise SandboxError(f"{tool}: {expect}")
        if norm not in asset.names():
            if ".." in norm.split("/"):
                why = "goes outside the sample (`..`)"
            elif norm.startswith("/"):
                why = "is an absolute path outside this sample"
            else:
                why = f"is not this sample's {kind}"
            raise SandboxError(f"{tool}: {arg} '{requested[:80]}' {why}; {expect}")
        if asset.real is None:
            raise SandboxError(f"{tool}: {asset.problem}")
        return asset.real
