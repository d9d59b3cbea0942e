#!/usr/bin/env bash
# Benchmarks on a GPU machine, results in benchmarks/results/gpu_<device kind>/.
#
#   bash benchmarks/gpu.sh [run_all.py options, e.g. --quick or --only link association]
#   bash benchmarks/gpu.sh --scale-only [bench_gpu.py options, e.g. --max-seconds 300]
#
# First bench_gpu.py (links/s and every env's twin-steps/s and device memory up to what the
# device holds: the absolute numbers), then the whole suite (run_all.py, every script with its
# CPU peers) unless --scale-only.
#
# Uses the active Python environment (run from the repository root, or set PYTHON). If JAX
# sees no GPU, installs jax[cuda12] into that environment with pip (network needed; set
# DTWIN_NO_INSTALL=1 to fail instead). Every JSON carries the device in its provenance and
# the folder is named after it (e.g. gpu_NVIDIA_H200).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

gpu_kind() {
  "$PYTHON" -c 'import jax; d = [x for x in jax.devices() if x.platform == "gpu"]; print(d[0].device_kind if d else "")' 2>/dev/null || true
}

kind=$(gpu_kind)
if [ -z "$kind" ]; then
  if [ "${DTWIN_NO_INSTALL:-0}" = 1 ]; then
    echo "no GPU visible to JAX (DTWIN_NO_INSTALL=1: not installing jax[cuda12])" >&2
    exit 1
  fi
  echo "no GPU visible to JAX: installing jax[cuda12] matching jax $("$PYTHON" -c 'import jax; print(jax.__version__)')" >&2
  "$PYTHON" -m pip install --quiet "jax[cuda12]==$("$PYTHON" -c 'import jax; print(jax.__version__)')"
  kind=$(gpu_kind)
  [ -n "$kind" ] || { echo "still no GPU visible to JAX; giving up" >&2; exit 1; }
fi

out="benchmarks/results/gpu_$(echo "$kind" | tr -c 'A-Za-z0-9._\n-' '_')"
echo "device: $kind -> $out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
export JAX_PLATFORMS=cuda
# JAX's allocator takes this share of the device; the rest stays free for CUDA's own use
# (loading a program's kernels failed for lack of it at 0.92)
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.85}
if [ "${1:-}" = --scale-only ]; then
  shift
  exec "$PYTHON" benchmarks/bench_gpu.py --out "$out/bench_gpu.json" "$@"
fi
"$PYTHON" benchmarks/bench_gpu.py --out "$out/bench_gpu.json"
exec "$PYTHON" benchmarks/run_all.py --out "$out" "$@"
