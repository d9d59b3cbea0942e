"""Make helpers in tests/ (probe_envs) importable from every test module, and compile fast.

The suite is dominated by XLA compiles of tiny problems, and on CPU most of a compile is LLVM
optimising the generated code: ``--xla_backend_optimization_level=0`` cuts compile times about
2-3x (e.g. the association-v0 env step 8 s -> 4 s, a VDN training program 28 s -> 7 s) for run
times that hardly change at test sizes. XLA's own HLO passes (fusion, simplification) still
run, so results agree with the default flags to float rounding. It is set here, before any
backend starts, for this process and, through the environment, for every subprocess, notebook
kernel and xdist worker the tests start; a level already in ``XLA_FLAGS`` is kept.
"""

import os
import sys

FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()

sys.path.insert(0, os.path.dirname(__file__))
