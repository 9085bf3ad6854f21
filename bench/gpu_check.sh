#!/usr/bin/env bash
# The GPU checks of the cuDNN attention path, as one script for a borrowed GPU machine whose
# image already has jax[cuda], flax, optax, torch and transformers (nothing is installed):
#   1. tests/test_attention_cudnn.py on the GPU (the cuDNN kernel against float32, bfloat16);
#   2. bench/attention.py (ours against torch's fused SDPA, forward + backward).
# Usage, from the repository root: bash bench/gpu_check.sh [OUT_DIR]
# The package is laid out under a temporary folder as setup.py maps it (no pip install).
set -uo pipefail
out=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$out"
site=$(mktemp -d)
mkdir "$site/seeker_jax"
for f in seeker_jax/*; do ln -s "$PWD/$f" "$site/seeker_jax/"; done
for d in models env rl data configs; do ln -s "$PWD/$d" "$site/seeker_jax/$d"; done
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" JAX_PLATFORMS=cuda PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())" \
  | tee -a "$out/gpu.txt"
repo=$PWD  # pytest runs from the package folder, so the source tree's seeker_jax/ (which has
# no models/ in it) does not shadow the laid-out package on sys.path
(cd "$site" && python3 -m pytest -q -s -p no:cacheprovider -c "$repo/pytest.ini" \
  --rootdir "$repo" "$repo/tests/test_attention_cudnn.py") 2>&1 | tee "$out/tests.txt"
tests_rc=${PIPESTATUS[0]}
bench_rc=skipped
if [ -z "${SKIP_BENCH:-}" ]; then
  python3 bench/attention.py "${@:2}" 2>&1 | tee "$out/bench.txt"
  bench_rc=${PIPESTATUS[0]}
fi
echo "tests rc=$tests_rc bench rc=$bench_rc"
