"""Make helpers in tests/ (probe_envs) importable from every test module, and compile fast.

The suite is dominated by XLA compiles of tiny problems, and on CPU most of a compile is LLVM
optimising the generated code: ``--xla_backend_optimization_level=0`` cuts compile times about
2-3x (e.g. the association-v0 env step 8 s -> 4 s, a VDN training program 28 s -> 7 s) for run
times that hardly change at test sizes. XLA's own HLO passes (fusion, simplification) still
run, so results agree with the default flags to float rounding. It is set here, before any
backend starts, for this process and, through the environment, for every subprocess, notebook
kernel and xdist worker the tests start; a level already in ``XLA_FLAGS`` is kept.

Many tests, notebooks and subprocesses compile the same XLA programs (the same env step at the
same shapes from different ``jax.jit`` objects or processes). A persistent compilation cache,
shared through the environment by the xdist workers and every subprocess, compiles each of
them once per session: a fresh temporary directory per session by default (so a run's time is
what a clean clone sees), or ``JAX_COMPILATION_CACHE_DIR`` when it is already set (set it to a
fixed directory to keep compiles between sessions).
"""

import atexit
import os
import shutil
import sys
import tempfile

FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()

sys.path.insert(0, os.path.dirname(__file__))

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="dtwin-jax-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
# cache every program that takes longer to compile than reading it back (~0.1 s or less)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
