"""Import before NumPy and JAX: one thread for XLA's Eigen ops (``XLA_FLAGS=
--xla_cpu_multi_thread_eigen=false``) and one for NumPy's BLAS (``OPENBLAS_NUM_THREADS=1``),
unless the environment sets them already.

The CPU benchmarks that compare against peers give each side one thread (XLA runs its fused
loops on one thread; mobile-env and the one-twin NumPy references are single-threaded
Python), so that a ratio measures the implementation, not the thread count.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false").strip()
