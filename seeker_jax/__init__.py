"""seeker-jax: VideoSeeker (agentic instance-level video QA on Qwen3-VL) in JAX / Flax NNX.

Importing the package decides, before jax starts a backend, whether libtpu may load.

Why: with `jax[tpu]` installed (it is in the `test` and `tpu` extras, for `seeker-jax aot`),
jax tries the TPU backend first on every machine. On a machine without a TPU that loads
libtpu, which fails to find TPU metadata and prints alarming lines to stderr (`E0000 ...
INVALID_ARGUMENT: unexpected worker hostname ...`, `=== Source Location Trace: ===`) before
falling back to the CPU. So: when no TPU and no GPU is attached and the user has not chosen
platforms (JAX_PLATFORMS unset), jax is pointed at the CPU. Nothing else changes:
- on a TPU VM (/dev/accel*, /dev/vfio/<n>, or a Google PCI device) jax finds the TPU as usual;
- with a GPU attached jax chooses as usual;
- an explicit JAX_PLATFORMS (even an empty one) is the user's and is left alone;
- AOT compiles for a TPU topology (`jax.experimental.topologies.get_topology_desc(platform=
  "tpu")`) load libtpu on demand whatever JAX_PLATFORMS says, so `seeker-jax aot` still works.
"""
from __future__ import annotations

import glob
import os
import sys
from importlib import metadata

try:
    __version__ = metadata.version("seeker-jax")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "unknown"

_GOOGLE_PCI_VENDOR = "0x1ae0"  # the vendor id of TPU chips on the PCI bus (what jax checks)


def tpu_attached(root: str = "/") -> bool:
    """Whether this machine has TPU chips: /dev/accel* (v2-v5e), /dev/vfio/<n> (v5p, v6e), or a
    Google PCI device. `root` lets a test point it at a fake filesystem."""
    dev = os.path.join(root, "dev")
    if glob.glob(os.path.join(dev, "accel*")) or glob.glob(os.path.join(dev, "vfio", "[0-9]*")):
        return True
    for vendor in glob.glob(os.path.join(root, "sys", "bus", "pci", "devices", "*", "vendor")):
        try:
            with open(vendor) as f:
                if f.read().strip() == _GOOGLE_PCI_VENDOR:
                    return True
        except OSError:
            continue
    return False


def gpu_attached(root: str = "/") -> bool:
    """Whether an NVIDIA or AMD GPU is visible (then jax picks its backend as usual)."""
    dev = os.path.join(root, "dev")
    return bool(glob.glob(os.path.join(dev, "nvidia[0-9]*")) or
                glob.glob(os.path.join(dev, "kfd")))


def cpu_only_platforms(environ: dict | os._Environ = os.environ, root: str = "/") -> str | None:
    """"cpu" when jax should be kept off libtpu (no TPU, no GPU, JAX_PLATFORMS unset), else None."""
    if "JAX_PLATFORMS" in environ or "JAX_PLATFORM_NAME" in environ:
        return None
    if tpu_attached(root) or gpu_attached(root):
        return None
    return "cpu"


def _keep_libtpu_off_cpu_machines() -> None:
    platforms = cpu_only_platforms()
    if platforms is None:
        return
    os.environ["JAX_PLATFORMS"] = platforms
    if "jax" in sys.modules:  # imported before us: its config has read the environment already
        try:
            import jax
            from jax._src import xla_bridge

            if not xla_bridge.backends_are_initialized():
                jax.config.update("jax_platforms", platforms)
        except (ImportError, AttributeError):  # a jax without these: it stays as it was
            pass


_keep_libtpu_off_cpu_machines()
