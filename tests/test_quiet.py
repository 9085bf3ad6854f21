"""Quiet CPU runs: no libtpu noise on a machine without TPUs, no orbax metadata warning.

With jax[tpu] installed, a bare `import jax; jax.devices()` on a CPU machine loads libtpu, which
prints `E0000 ... INVALID_ARGUMENT: ... TPU_WORKER_HOSTNAMES` and `=== Source Location Trace:
===` to stderr. Importing seeker_jax first must keep it away (seeker_jax/__init__.py), while
AOT compiles for TPU topologies still load it. The runs below are real subprocesses of the real
CLI, with JAX_PLATFORMS unset as a user's shell has it (conftest sets it for the tests).
"""
import importlib.util
import logging
import os
import subprocess
import sys

import pytest

from seeker_jax import cpu_only_platforms, gpu_attached, tpu_attached

NOISE = ("E0000", "INVALID_ARGUMENT", "Source Location Trace", "TPU_WORKER_HOSTNAMES")
HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
ON_ACCELERATOR = tpu_attached() or gpu_attached()


def user_env() -> dict:
    """The environment of a user's shell: no JAX_PLATFORMS, no fake devices."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "XLA_FLAGS")}
    env["HF_HUB_OFFLINE"] = "1"
    # as seeker_jax.aot.fit does: libtpu takes a lock file per process, and other test processes
    # may hold it; compiling (or failing to find a TPU) needs no lock
    env["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
    return env


def run(args: list[str], cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=user_env(), capture_output=True, text=True,
                          timeout=timeout)


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [n for n in NOISE if n in proc.stderr]
    assert not found, f"{found} in stderr:\n{proc.stderr[-3000:]}"
    assert "Metadata file does not exist" not in proc.stderr, proc.stderr[-3000:]


def test_platform_choice_on_fake_machines(tmp_path):
    bare = tmp_path / "bare"
    (bare / "dev").mkdir(parents=True)
    assert not tpu_attached(str(bare)) and not gpu_attached(str(bare))
    assert cpu_only_platforms({}, str(bare)) == "cpu"
    assert cpu_only_platforms({"JAX_PLATFORMS": ""}, str(bare)) is None  # the user's choice
    assert cpu_only_platforms({"JAX_PLATFORMS": "tpu"}, str(bare)) is None

    for kind, make in {"accel": lambda r: (r / "dev" / "accel0").touch(),
                       "vfio": lambda r: ((r / "dev" / "vfio").mkdir(),
                                          (r / "dev" / "vfio" / "0").touch()),
                       "pci": lambda r: ((r / "sys/bus/pci/devices/0000:00:04.0").mkdir(parents=True),
                                         (r / "sys/bus/pci/devices/0000:00:04.0/vendor")
                                         .write_text("0x1ae0\n"))}.items():
        root = tmp_path / kind
        (root / "dev").mkdir(parents=True)
        make(root)
        assert tpu_attached(str(root)), kind
        assert cpu_only_platforms({}, str(root)) is None, kind  # jax finds the TPU as usual

    other_pci = tmp_path / "other_pci" / "sys/bus/pci/devices/0000:00:01.0"
    other_pci.mkdir(parents=True)
    (other_pci / "vendor").write_text("0x8086\n")
    (tmp_path / "other_pci" / "dev" / "vfio").mkdir(parents=True)
    (tmp_path / "other_pci" / "dev" / "vfio" / "vfio").touch()  # the control node, no group
    assert not tpu_attached(str(tmp_path / "other_pci"))

    gpu = tmp_path / "gpu"
    (gpu / "dev").mkdir(parents=True)
    (gpu / "dev" / "nvidia0").touch()
    assert gpu_attached(str(gpu)) and cpu_only_platforms({}, str(gpu)) is None


@pytest.mark.skipif(ON_ACCELERATOR, reason="a TPU or GPU is attached: jax picks it, as it should")
def test_cli_on_cpu_is_quiet(tiny_hf_untied, tmp_path):
    """The demo's first stage (synth, tiny world) and a command that starts a jax backend
    (convert a tiny HF folder) print none of libtpu's lines."""
    proc = run([sys.executable, "-m", "seeker_jax.cli.main", "synth", "--out", str(tmp_path / "world"),
                "--num", "4", "--config", "configs/synth.py:tiny"], cwd=tmp_path)
    assert_quiet(proc)
    assert "synth: 4 records" in proc.stdout

    proc = run([sys.executable, "-m", "seeker_jax.cli.main", "convert", "--hf-dir",
                tiny_hf_untied.path, "--out", str(tmp_path / "ckpt")], cwd=tmp_path)
    assert_quiet(proc)
    assert os.path.isdir(tmp_path / "ckpt" / "params")


@pytest.mark.skipif(not HAS_LIBTPU or ON_ACCELERATOR, reason="needs libtpu and no accelerator")
def test_without_seeker_jax_libtpu_is_loaded_and_noisy(tmp_path):
    """The control: the same environment without our import shows the noise, so the test
    above would catch a regression."""
    proc = run([sys.executable, "-c", "import jax; print(jax.devices())"], cwd=tmp_path)
    assert proc.returncode == 0 and "CpuDevice" in proc.stdout
    assert any(n in proc.stderr for n in NOISE), proc.stderr

    proc = run([sys.executable, "-c", "import seeker_jax, jax; print(jax.devices())"], cwd=tmp_path)
    assert_quiet(proc)
    assert "CpuDevice" in proc.stdout


@pytest.mark.skipif(not HAS_LIBTPU, reason="needs libtpu (pip install '.[tpu]')")
def test_aot_still_reaches_the_tpu_compiler(tmp_path):
    code = ("import seeker_jax, jax\n"
            "from jax.experimental import topologies\n"
            "t = topologies.get_topology_desc(platform='tpu', topology_name='v5e:2x2')\n"
            "print(len(t.devices), t.devices[0].platform, jax.devices()[0].platform)\n")
    proc = run([sys.executable, "-c", code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = "4 tpu tpu" if tpu_attached() else "4 tpu"
    assert proc.stdout.strip().startswith(expected), proc.stdout


def test_trained_checkpoint_reads_without_metadata_warning(tiny_hf, tmp_path):
    """A CheckpointManager root as the trainers write it: reading its params (what export and
    the demo do) must not log orbax's "Metadata file does not exist" warning."""
    import jax.numpy as jnp
    import numpy as np
    import orbax.checkpoint as ocp

    from seeker_jax.checkpointing import checkpoint as C
    from seeker_jax.models.qwen3_vl import from_pretrained

    model = from_pretrained(tiny_hf.path)
    root = str(tmp_path / "checkpoints")
    C.write_model_config(root, model.config)
    with ocp.CheckpointManager(root, item_names=("params",)) as mngr:
        mngr.save(3, args=ocp.args.Composite(params=ocp.args.StandardSave(C.params_tree(model))))
        mngr.wait_until_finished()

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(handler)
    try:
        stored = C.stored_metadata(os.path.join(root, "3", "params"))
        restored = C.restore_params(root)
    finally:
        absl_logger.removeHandler(handler)
    assert not [m for m in seen if "Metadata file does not exist" in m], seen
    want = C.params_tree(model)
    assert set(stored) == set(want) == set(restored)
    for k, v in want.items():
        assert tuple(stored[k].shape) == v.shape and stored[k].dtype == v.dtype
        np.testing.assert_array_equal(np.asarray(restored[k]), np.asarray(v))
    assert restored[k].dtype == jnp.float32


@pytest.mark.slow
@pytest.mark.skipif(ON_ACCELERATOR, reason="a TPU or GPU is attached")
def test_short_demo_is_quiet(tmp_path):
    """The whole demo, one SFT step, one GRPO iteration and one episode: every stage's stderr
    is clean (about 3 minutes on 2 cores)."""
    proc = run([sys.executable, "-m", "seeker_jax.cli.main", "demo", "--workdir", str(tmp_path / "d"),
                "--steps", "1", "--grpo-steps", "1", "--episodes", "1"], cwd=tmp_path,
               timeout=1200)
    assert_quiet(proc)
    for line in ("[demo] 4/6 GRPO", "[demo] 5/6 evaluating the GRPO model",
                 "[demo]       accuracy", "[demo]     one episode in full:",
                 "[demo] 6/6 exporting"):
        assert line in proc.stdout, line
    assert (tmp_path / "d" / "demo_summary.json").is_file()
