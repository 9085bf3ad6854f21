"""Installs `seeker_jax`; the root folders models/, env/, rl/, data/ map to its subpackages."""
from setuptools import setup

SUBPACKAGES = {
    "seeker_jax": "seeker_jax",
    "seeker_jax.models": "models",
    "seeker_jax.models.qwen3_vl": "models/qwen3_vl",
    "seeker_jax.env": "env",
    "seeker_jax.rl": "rl",
    "seeker_jax.rl.rewards": "rl/rewards",
    "seeker_jax.data": "data",
    "seeker_jax.data.pipeline": "data/pipeline",
    "seeker_jax.eval": "seeker_jax/eval",
    "seeker_jax.serve": "seeker_jax/serve",
    "seeker_jax.agents": "seeker_jax/agents",
    "seeker_jax.aot": "seeker_jax/aot",
    "seeker_jax.checkpointing": "seeker_jax/checkpointing",
    "seeker_jax.cli": "seeker_jax/cli",
    "seeker_jax.generation": "seeker_jax/generation",
    "seeker_jax.training": "seeker_jax/training",
    "seeker_jax.configs": "configs",  # so `--config configs/x.py:preset` works after `pip install .`
}

setup(
    name="seeker-jax",
    version="0.1.0",
    description="VideoSeeker (agentic instance-level video QA on Qwen3-VL) in JAX/Flax NNX",
    python_requires=">=3.10",
    package_dir=SUBPACKAGES,
    packages=list(SUBPACKAGES),
    install_requires=[
        "jax>=0.7.0",
        "flax>=0.12.0",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11.0",
        "grain>=0.2.12",
        "ml-collections>=1.0.0",
        "transformers>=5.0.0",
        "decord>=0.6.0",
        "av>=12.0.0",
        "safetensors>=0.4.3",
        "numpy>=1.26",
        "pillow>=10.0",
        "tqdm>=4.66",
        "rich>=13.0",
        "psutil>=5.9",
        "tensorboardX>=2.6",
        "matplotlib>=3.8",      # reward / tool-use / accuracy / funnel plots
        "pydantic>=2.6",        # the server's wire format, pipeline reply schemas
        "fastapi>=0.110",       # seeker-jax serve
        "uvicorn>=0.29",
        "pycocotools>=2.0.7",   # mask RLE in the data pipeline
        "pyarrow>=15.0",        # verl parquet interop
    ],
    extras_require={
        # torch is the CPU build (a local wheel here); it is the parity reference only.
        # qwen-agent carries the Qwen BPE ranks for the offline tokenizer; .ci/run installs it
        # with --no-deps, since its own dependencies are not needed.
        # jax[tpu] brings libtpu, the TPU compiler: tests/test_aot.py compiles for TPU pods on CPU.
        # trl: the GRPO loss parity reference; openai: the official client the server is tested
        # with; ray: the pipeline's scale-out, tested on a local ray.init(num_cpus=2).
        # ruff and import-linter: tests/test_lint.py holds the style and layering rules.
        # pytest-xdist: pytest.ini runs the suite in two worker processes, a file to a worker.
        "test": ["pytest>=8.0", "pytest-xdist>=3.5", "hypothesis>=6.100", "torch==2.13.0", "jax[tpu]>=0.7.0",
                 "trl>=1.0", "openai>=1.40", "ray>=2.30", "ruff>=0.6", "import-linter>=2.1"],
        "ray": ["ray>=2.30"],
        # Meta's sam2 package: the masks.backend=sam2_pkg stage. It brings its own torch and
        # torchvision (CUDA builds from PyPI); build without its CUDA op: SAM2_BUILD_CUDA=0.
        "sam2": ["sam2>=1.1"],
        "tpu": ["jax[tpu]>=0.7.0"],
    },
    entry_points={"console_scripts": ["seeker-jax=seeker_jax.cli.main:main"]},
)
