"""Multi-host launcher: ``jax.distributed.initialize`` first, then your program.

One process per host (or several on one machine)::

    python -m dtwin_jax.launch --num-processes 2 --process-id 0 --coordinator host0:1234 \\
        -- my_package.train --twins 4096        # on host 0
    python -m dtwin_jax.launch --num-processes 2 --process-id 1 --coordinator host0:1234 \\
        -- my_package.train --twins 4096        # on host 1

or all processes on this machine (coordinator on 127.0.0.1, a free port)::

    python -m dtwin_jax.launch --spawn 2 --local-devices 2 -- path/to/script.py ARGS

The target after ``--`` is a module name (run like ``python -m``) or a ``.py`` path; it runs
with ``sys.argv = [target, *args]`` after :func:`initialize`, so ``jax.devices()`` lists the
devices of all processes and :func:`dtwin_jax.parallel.make_mesh` spans them. The program then
builds the same global twin batch in every process and calls
:func:`dtwin_jax.parallel.train_sharded` (or :func:`~dtwin_jax.parallel.shard_twins`); XLA's
collectives cross processes (on CPU through gloo, ``jax_cpu_collectives_implementation``; on
GPUs NCCL). No transport of our own.

``--local-devices N`` gives each process N CPU devices (``jax_num_cpu_devices``: a CPU test of
a multi-device, multi-host layout); leave it out on accelerators.
"""

from __future__ import annotations

import argparse
import os
import runpy
import socket
import subprocess
import sys
from collections.abc import Sequence


def initialize(coordinator: str, num_processes: int, process_id: int,
               local_devices: int | None = None, timeout_s: int = 300) -> None:
    """Join a ``jax.distributed`` cluster; call before any other JAX use in the process.

    ``coordinator``: ``host:port`` of process 0 (which serves it). ``local_devices``: CPU
    devices of this process (``jax_num_cpu_devices``; None leaves the backend's own).
    """
    import jax

    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(f"need 0 <= process_id < num_processes; got process_id={process_id}, "
                         f"num_processes={num_processes}")
    if local_devices is not None:
        if local_devices < 1:
            raise ValueError(f"local_devices must be >= 1, got {local_devices}")
        jax.config.update("jax_num_cpu_devices", local_devices)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s)


def run_target(target: str, args: Sequence[str]) -> None:
    """Run ``target`` (a module name, or a path ending in ``.py``) as ``__main__`` with
    ``sys.argv = [target, *args]``."""
    sys.argv = [target, *args]
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a local coordinator)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_local(num_processes: int, target: str, args: Sequence[str] = (),
                local_devices: int | None = None, timeout_s: float | None = None,
                env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """Run ``target`` in ``num_processes`` local processes of one cluster and wait for all.

    The coordinator is 127.0.0.1 on a free port. Every process is killed if any is still
    running after ``timeout_s`` (then ``returncode`` is negative). Returns one
    ``CompletedProcess`` per process (stdout and stderr as text), in process-id order.
    """
    coordinator = f"127.0.0.1:{free_port()}"
    procs = []
    for i in range(num_processes):
        cmd = [sys.executable, "-m", "dtwin_jax.launch", "--num-processes", str(num_processes),
               "--process-id", str(i), "--coordinator", coordinator]
        if local_devices is not None:
            cmd += ["--local-devices", str(local_devices)]
        procs.append(subprocess.Popen([*cmd, "--", target, *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ if env is None else env)))
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout_s)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        for proc in procs[len(done):]:
            out, err = proc.communicate()
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: python -m dtwin_jax.launch [options] -- TARGET [ARGS...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    ap = argparse.ArgumentParser(prog="python -m dtwin_jax.launch",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--num-processes", type=int, default=1)
    ap.add_argument("--process-id", type=int, default=0)
    ap.add_argument("--coordinator", default=None, help="host:port of process 0")
    ap.add_argument("--spawn", type=int, default=None, metavar="P",
                    help="start P local processes (coordinator 127.0.0.1, a free port)")
    ap.add_argument("--local-devices", type=int, default=None,
                    help="CPU devices per process (jax_num_cpu_devices)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds (with --spawn)")
    opts = ap.parse_args(argv[:split])
    rest = argv[split + 1:]
    if not rest:
        ap.error("a TARGET (module or .py path) must follow --")
    if opts.spawn is not None:
        if opts.spawn < 1:
            ap.error("--spawn needs at least 1 process")
        results = spawn_local(opts.spawn, rest[0], rest[1:], opts.local_devices, opts.timeout)
        for i, res in enumerate(results):
            for line in (res.stdout + res.stderr).splitlines():
                print(f"[{i}] {line}")
        return max((abs(res.returncode) for res in results), default=0)
    if opts.coordinator is None:
        ap.error("--coordinator host:port is required (or --spawn P)")
    initialize(opts.coordinator, opts.num_processes, opts.process_id, opts.local_devices)
    run_target(rest[0], rest[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
