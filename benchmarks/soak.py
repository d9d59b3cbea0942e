"""Soak: 10^6 env steps per registered env with random legal actions, in one process.

For every registered env (or ``--envs``) the default twin is copied ``K`` times
(:class:`dtwin_jax.envs.wrappers.VecEnv`, auto-reset inside the step) and driven by uniformly
random legal actions (:func:`random_legal_action`: the distribution of
:func:`dtwin_jax.envs.testing.random_action` under each twin's action mask, drawn faster).
One jitted *chunk* is a ``lax.scan`` of ``S`` steps of all ``K`` twins; Python calls it
again and again with the carried ``(key, obs, state)``, so one compiled program runs many
times in one process. Steps are counted as twin-steps (``K x S`` per chunk); an env runs
``ceil(--steps / (K S))`` chunks, or stops at the first chunk boundary more than
``--max-seconds`` after the first chunk (compile excluded; then ``complete`` is false and
``steps_run`` says how far it got).

Per chunk, on the device: the number of non-finite values among the float leaves of the
observations, rewards and infos of every step (``info["final_observation"]`` included), the
reward sum (float32, all twins and agents), the number of episodes ended (terminated or
truncated twin-steps) and a bit-exact uint32 checksum of the carried ``(key, obs, state)`` at
the chunk's end (every leaf bitcast to unsigned integers, a position-weighted wrapping sum).

Memory: the resident set size from ``/proc/self/statm`` (resident pages x page size, after a
``gc.collect()``), read after the first chunk (compile done), after every chunk and at the
end; growth = end - start. Determinism: after the run the same chunks are run again from the
same key in the same process (the first ``--determinism-steps`` twin-steps, or the whole run
with ``--determinism full``), and every chunk's statistics, checksum included, must be
bit-identical.

An env passes when it saw no non-finite value, its RSS grew by at most ``--rss-max-mb`` MB or
at most ``--rss-max-pct`` % (failing needs both exceeded) and the rerun matched. If any env
failed, ``main`` raises ``SystemExit(1)`` after writing the JSON (exit status 1). Throughput
(``steps_per_s``) excludes the first chunk (compile); it is not a speed measurement (the CPU
may be shared).

Usage: ``python benchmarks/soak.py [--quick] [--envs dnt-sync-v0 ...]``; writes
``benchmarks/results/soak.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import make
from dtwin_jax.envs.base import Environment
from dtwin_jax.envs.registry import registered_envs
from dtwin_jax.envs.spaces import MultiDiscrete
from dtwin_jax.envs.testing import obs_action_mask, random_action
from dtwin_jax.envs.wrappers import VecEnv
from dtwin_jax.reporting import machine_info, provenance, write_results

# env id -> (twins K, steps per chunk S), picked on the 2-core CPU so that 10^6 twin-steps
# take minutes where the env allows it. Measured there at load ~8 (twin-steps/s): dnt-sync-v0
# ~2000 (512 x 20), association-v0 ~1800 (256 x 20), edge-retrain-v0 ~520 (256 x 40; about
# 2200 idle at 16 to 1024 twins, bench_edge.json), slicing-v0 ~21 (64 x 2; 2000 packet slots
# inside one step): slicing-v0 cannot reach 10^6 and runs until --max-seconds.
SIZES: dict[str, tuple[int, int]] = {
    "association-v0": (256, 50),
    "dnt-sync-v0": (512, 50),
    "edge-retrain-v0": (64, 80),
    "slicing-v0": (64, 4),
}
DEFAULT_SIZE = (64, 16)  # an env registered later than this table
MAX_SECONDS = 1800.0  # per env (main run; the determinism rerun comes on top)
QUICK_STEPS = 2048
QUICK_SIZE_CAP = (16, 8)  # --quick: K and S at most these
QUICK_MAX_SECONDS = 20.0

_HASH_MUL = np.uint32(2654435761)  # Knuth's multiplicative hash constant (odd)


def rss_mb() -> float:
    """Resident set size of this process in MB (2^20 bytes), from ``/proc/self/statm``
    (second field, pages) after a ``gc.collect()``."""
    gc.collect()
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _as_uint32(x: jax.Array) -> jax.Array:
    """The bits of ``x`` as a flat uint32 vector (64-bit values give two entries each)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        return x.reshape(-1).astype(jnp.uint32)
    bits = x.dtype.itemsize * 8
    x = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{bits}"))
    if bits == 64:
        x = jax.lax.bitcast_convert_type(x, jnp.uint32)  # [..., 2]
    return x.reshape(-1).astype(jnp.uint32)


def checksum(tree) -> jax.Array:
    """A uint32 scalar that changes when any bit of any leaf of ``tree`` changes (almost
    surely): per leaf ``sum_i bits_i * (2654435761 i + 1)`` (wrapping), leaves combined as
    ``h = 31 h + leaf`` (wrapping)."""
    h = jnp.uint32(0)
    for leaf in jax.tree.leaves(tree):
        u = _as_uint32(jnp.asarray(leaf))
        weights = jnp.arange(u.shape[0], dtype=jnp.uint32) * _HASH_MUL + jnp.uint32(1)
        h = h * jnp.uint32(31) + jnp.sum(u * weights, dtype=jnp.uint32)
    return h


def nonfinite_count(tree) -> jax.Array:
    """int32 scalar: number of NaN or +-inf entries among the float leaves of ``tree``."""
    counts = [jnp.sum(~jnp.isfinite(leaf), dtype=jnp.int32) for leaf in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
    return sum(counts, jnp.int32(0))


def uniform_legal(key: jax.Array, mask: jax.Array) -> jax.Array:
    """int32 index uniform among the True entries of ``mask [..., n]`` (uniform over all ``n``
    where none is True): the distribution of ``Discrete.sample(key, mask)``.

    Drawn by inverse CDF (one uniform integer per draw) instead of ``n`` Gumbel draws, in two
    levels: the entries are cut into blocks of ``w = ceil(sqrt(n))``, the pick's block is found
    from the ``[..., n / w]`` cumulative block counts and its place from that block's ``[..., w]``
    cumulative sum (a cumulative sum over all ``n`` is slow on XLA:CPU).
    """
    mask = mask | ~mask.any(-1, keepdims=True)
    n = mask.shape[-1]
    width = math.isqrt(n - 1) + 1
    blocks = -(-n // width)
    pad = [(0, 0)] * (mask.ndim - 1) + [(0, blocks * width - n)]
    mask = jnp.pad(mask, pad).reshape(*mask.shape[:-1], blocks, width)  # [..., B, w]
    counts = jnp.sum(mask, -1, dtype=jnp.int32)  # [..., B]
    upto = jnp.cumsum(counts, -1)  # [..., B]: legal entries in blocks 0..b
    pick = jax.random.randint(key, upto.shape[:-1], 0, upto[..., -1])  # [...]: rank wanted
    block = jnp.sum(upto <= pick[..., None], -1, dtype=jnp.int32)  # [...]
    row = jnp.take_along_axis(mask, block[..., None, None], axis=-2)[..., 0, :]  # [..., w]
    rank = pick - jnp.take_along_axis(upto - counts, block[..., None], axis=-1)[..., 0]
    within = jnp.sum(jnp.cumsum(row, -1, dtype=jnp.int32) <= rank[..., None], -1,
                     dtype=jnp.int32)
    return block * width + within


def random_legal_action(env: Environment, key: jax.Array, obs, params) -> jax.Array:
    """A uniformly random legal action of one twin (every agent), as
    :func:`dtwin_jax.envs.testing.random_action` draws it but with masks drawn by
    :func:`uniform_legal` (dnt-sync-v0's 8192 joint actions per agent made the Gumbel draw of
    ``Discrete.sample`` about 12x the env step)."""
    space = env.action_space(params)
    mask = obs_action_mask(env, obs)
    if mask is None:
        return random_action(env, key, obs, params)
    if isinstance(space, MultiDiscrete):  # a factor with no legal value: any of its values
        valid = jnp.asarray(space.valid_values())  # [F, n_max]
        mask = jnp.where((mask & valid).any(-1, keepdims=True), mask & valid, valid)
    return uniform_legal(key, mask).astype(space.dtype)


def make_chunk(env: Environment, num_twins: int, chunk_steps: int,
               reset_batch: int | None = None):
    """``(init, chunk)``, both jitted, for ``num_twins`` default twins of ``env``
    (``reset_batch``: see :class:`~dtwin_jax.envs.wrappers.VecEnv`).

    ``init(key) -> carry``: ``carry = (key, obs, state)`` with the twins reset (leading
    ``[K]`` axis on obs and state). ``chunk(carry) -> (carry, stats)`` (the carry passed in
    is donated: its buffers hold the result, so only one copy is resident): ``chunk_steps``
    steps of every twin under random legal actions; ``stats`` holds int32 ``nonfinite``,
    float32 ``reward_sum``, int32 ``episodes`` and uint32 ``checksum`` (scalars, see the
    module docstring).
    """
    vec = VecEnv(env, num_twins, reset_batch=reset_batch)
    one = env.default_params

    def sample_actions(key, obs):
        keys = jax.random.split(key, num_twins)
        return jax.vmap(lambda k, o: random_legal_action(env, k, o, one))(keys, obs)

    def init(key):
        key, key_reset = jax.random.split(key)
        obs, state = vec.reset(key_reset, vec.batch_params(one))
        return key, obs, state

    def body(params, acc, _):
        (key, obs, state), (bad, reward_sum, episodes) = acc
        key, k_act, k_step = jax.random.split(key, 3)
        action = sample_actions(k_act, obs)
        obs, state, reward, term, trunc, info = vec.step(k_step, state, action, params)
        bad = bad + nonfinite_count((obs, reward, info))
        reward_sum = reward_sum + jnp.sum(reward, dtype=jnp.float32)
        episodes = episodes + jnp.sum(term | trunc, dtype=jnp.int32)
        return ((key, obs, state), (bad, reward_sum, episodes)), None

    def chunk(carry):
        # the twins' params are broadcast inside the trace (one twin's constants), not
        # captured: a captured [K, ...] copy would be embedded in the program (GBs at 65536)
        params = vec.batch_params(one)
        zero = (jnp.int32(0), jnp.float32(0.0), jnp.int32(0))
        (carry, (bad, reward_sum, episodes)), _ = jax.lax.scan(
            functools.partial(body, params), (carry, zero), None, length=chunk_steps)
        stats = {"nonfinite": bad, "reward_sum": reward_sum, "episodes": episodes,
                 "checksum": checksum(carry)}
        return carry, stats

    return jax.jit(init), jax.jit(chunk, donate_argnums=0)


def _fingerprint(stats: dict) -> tuple[int, int, int, int]:
    """A chunk's statistics as exact integers (the float32 reward sum by its bits)."""
    reward_bits = int(np.asarray(stats["reward_sum"], np.float32).view(np.uint32))
    return (int(stats["nonfinite"]), reward_bits, int(stats["episodes"]),
            int(stats["checksum"]))


def soak_env(env: Environment, num_twins: int, chunk_steps: int, steps: int, seed: int = 0,
             max_seconds: float = math.inf, determinism_steps: int | None = 100_000,
             rss_max_mb: float = 50.0, rss_max_pct: float = 5.0) -> dict:
    """Soak one env (see the module docstring); returns its results row.

    ``steps``: twin-steps wanted; ``max_seconds``: stop at the first chunk boundary this many
    wall seconds after the first chunk (compile excluded); ``determinism_steps``: twin-steps
    rerun and compared (None: the whole run). The row holds ``steps_run``, ``complete``,
    ``seconds`` (the run, compile included), ``first_chunk_s`` (compile + one chunk),
    ``steps_per_s`` (after the first chunk), ``nonfinite``, ``episodes``, ``reward_sum``,
    ``rss_start_mb`` / ``rss_end_mb`` / ``rss_growth_mb`` / ``rss_growth_pct``,
    ``rss_mb_per_chunk``, ``checksums``,
    ``deterministic``, ``chunks_compared`` / ``steps_compared`` / ``rerun_s`` (the rerun),
    ``failures`` (list of reasons) and ``passed``. ``rss_start_mb`` is read after the first
    chunk, ``rss_end_mb`` after the last.
    """
    per_chunk = num_twins * chunk_steps
    num_chunks = max(1, math.ceil(steps / per_chunk))
    init, chunk = make_chunk(env, num_twins, chunk_steps)
    key = jax.random.PRNGKey(seed)

    start = time.perf_counter()
    carry = init(key)
    history, rss_trace = [], []
    after_first = None
    for _ in range(num_chunks):
        carry, stats = chunk(carry)
        history.append(jax.device_get(stats))
        rss_trace.append(round(rss_mb(), 1))
        if after_first is None:
            after_first = time.perf_counter()
        if time.perf_counter() - after_first > max_seconds:
            break
    end = time.perf_counter()
    rss_start, rss_end = rss_trace[0], rss_trace[-1]

    prints = [_fingerprint(h) for h in history]
    done = len(prints)
    compare = done if determinism_steps is None else min(
        done, max(1, math.ceil(determinism_steps / per_chunk)))
    rerun_start = time.perf_counter()
    carry = init(key)
    again = []
    for _ in range(compare):
        carry, stats = chunk(carry)
        again.append(_fingerprint(jax.device_get(stats)))
    deterministic = again == prints[:compare]
    rerun_s = time.perf_counter() - rerun_start

    nonfinite = sum(int(h["nonfinite"]) for h in history)
    growth = rss_end - rss_start
    growth_pct = 100.0 * growth / rss_start
    failures = []
    if nonfinite:
        failures.append(f"{nonfinite} non-finite values")
    if growth > rss_max_mb and growth_pct > rss_max_pct:
        failures.append(f"RSS grew {growth:.0f} MB ({growth_pct:.1f} %)")
    if not deterministic:
        failures.append("rerun from the same key differs")
    return {
        "twins": num_twins,
        "chunk_steps": chunk_steps,
        "steps_wanted": steps,
        "steps_run": done * per_chunk,
        "chunks": done,
        "complete": done == num_chunks,
        "seconds": end - start,
        "first_chunk_s": after_first - start,
        "steps_per_s": (done - 1) * per_chunk / (end - after_first) if done > 1 else None,
        "nonfinite": nonfinite,
        "episodes": sum(int(h["episodes"]) for h in history),
        "reward_sum": sum(float(h["reward_sum"]) for h in history),
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_growth_mb": growth,
        "rss_growth_pct": growth_pct,
        "rss_mb_per_chunk": rss_trace,
        "checksums": [int(h["checksum"]) for h in history],
        "chunks_compared": compare,
        "steps_compared": compare * per_chunk,
        "rerun_s": rerun_s,
        "deterministic": deterministic,
        "failures": failures,
        "passed": not failures,
    }


def _table(rows: dict) -> None:
    print(f"{'env':<16} {'twins':>5} {'steps':>9} {'done':>4} {'time s':>7} {'steps/s':>8} "
          f"{'nonfin':>6} {'episodes':>8} {'RSS0 MB':>8} {'RSS1 MB':>8} {'growth':>13} "
          f"{'determ.':>7}  result")
    for env_id, r in rows.items():
        rate = "-" if r["steps_per_s"] is None else f"{r['steps_per_s']:.0f}"
        growth = f"{r['rss_growth_mb']:+.1f} ({r['rss_growth_pct']:+.1f}%)"
        print(f"{env_id:<16} {r['twins']:>5} {r['steps_run']:>9} "
              f"{'yes' if r['complete'] else 'no':>4} {r['seconds']:>7.0f} {rate:>8} "
              f"{r['nonfinite']:>6} {r['episodes']:>8} {r['rss_start_mb']:>8.0f} "
              f"{r['rss_end_mb']:>8.0f} {growth:>13} "
              f"{'yes' if r['deterministic'] else 'NO':>7}  "
              f"{'pass' if r['passed'] else 'FAIL: ' + '; '.join(r['failures'])}")


def main(argv=None) -> dict:
    """Command line: see the module docstring. Returns the results written (all passed)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_STEPS} twin-steps per env, K and S capped at {QUICK_SIZE_CAP},"
                         f" --max-seconds {QUICK_MAX_SECONDS:g}")
    ap.add_argument("--envs", nargs="+", default=None, help="env ids (default: all registered)")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"twin-steps per env (default 1_000_000; quick: {QUICK_STEPS})")
    ap.add_argument("--twins", type=int, default=None, help="K for every env (default: SIZES)")
    ap.add_argument("--chunk-steps", type=int, default=None,
                    help="S for every env (default: SIZES)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help=f"per env: stop at the first chunk boundary this many seconds after "
                         f"the first chunk (default {MAX_SECONDS:g})")
    ap.add_argument("--determinism", choices=("prefix", "full"), default="prefix",
                    help="rerun the first --determinism-steps twin-steps, or all of them")
    ap.add_argument("--determinism-steps", type=int, default=100_000)
    ap.add_argument("--rss-max-mb", type=float, default=50.0,
                    help="fail if RSS grows by more than this AND by more than --rss-max-pct")
    ap.add_argument("--rss-max-pct", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "soak.json"))
    args = ap.parse_args(argv)
    started = provenance(vars(args))  # the code as it was when the run (hours) started
    env_ids = args.envs or registered_envs()
    steps = args.steps or (QUICK_STEPS if args.quick else 1_000_000)
    max_seconds = args.max_seconds or (QUICK_MAX_SECONDS if args.quick else MAX_SECONDS)

    rows = {}
    for env_id in env_ids:
        twins, chunk_steps = SIZES.get(env_id, DEFAULT_SIZE)
        if args.quick:
            twins, chunk_steps = min(twins, QUICK_SIZE_CAP[0]), min(chunk_steps,
                                                                    QUICK_SIZE_CAP[1])
        twins, chunk_steps = args.twins or twins, args.chunk_steps or chunk_steps
        print(f"{env_id}: {twins} twins x {chunk_steps} steps per chunk ...", flush=True)
        rows[env_id] = soak_env(
            make(env_id), twins, chunk_steps, steps, seed=args.seed,
            max_seconds=max_seconds,
            determinism_steps=None if args.determinism == "full" else args.determinism_steps,
            rss_max_mb=args.rss_max_mb, rss_max_pct=args.rss_max_pct)
        _table({env_id: rows[env_id]})
    print()
    _table(rows)
    result = {
        "benchmark": "soak",
        "policy": ("uniformly random legal actions (random_legal_action: masked Discrete / "
                   "MultiDiscrete by inverse CDF, other spaces by testing.random_action)"),
        "steps_counted_as": "twin-steps (twins x steps)",
        "rss_source": "/proc/self/statm resident pages x page size, after gc.collect()",
        "rss_fail_if": {"growth_mb_above": args.rss_max_mb, "and_growth_pct_above":
                        args.rss_max_pct},
        "envs": rows,
        "incomplete": [env_id for env_id, r in rows.items() if not r["complete"]],
        "passed": all(r["passed"] for r in rows.values()),
        "machine": machine_info(),
        "provenance": started,
    }
    write_results(result, args.out)
    print("wrote", args.out)
    if not result["passed"]:
        raise SystemExit(1)  # also through run_all.py, which ignores main's return value
    return result


if __name__ == "__main__":
    main()
