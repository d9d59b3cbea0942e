"""Twins that do not fit in memory at once: measured per-twin memory, chunked rollouts, chunked
PPO, DQN and VDN/IQL training.

Memory. :func:`measure_footprint` compiles a program at two twin counts and reads XLA's buffer
assignment of the compiled executable (``compiled.memory_analysis()``: the bytes of its
arguments, outputs and temporaries, minus donated arguments aliased to outputs). These are the
allocations the program makes on the device, measured from the compiled program rather than
estimated from array shapes; the line through the two points gives the bytes per twin (slope)
and the fixed bytes (intercept: network, optimizer state, constants).
:func:`step_footprint`, :func:`rollout_footprint` and :func:`ppo_update_footprint` do it for
one ``VecEnv`` step (state donated, as a stepping loop runs it), a rollout of ``num_steps`` and
one PPO update; :meth:`MemoryFootprint.max_twins` and :func:`chunk_size_for` turn a device's
memory into the number of twins per chunk.

Chunked rollouts. :func:`rollout_chunked` runs K twins ``chunk_size`` at a time: twin ``i``
gets the key ``split(key, K)[i]`` and runs as a one-twin :class:`VecEnv` rollout, and
``lax.map(..., batch_size=chunk_size)`` vectorises the twins in chunks, so twin ``i``'s
trajectory does not depend on ``chunk_size`` (tested) and peak memory is that of one chunk plus
the outputs.

Chunked training. :func:`make_train_chunked` trains ONE shared PPO (or DQN, or VDN/IQL) policy
on K twins of which only ``chunk_size`` step and learn at a time: the K twins' states stay
resident (they are small: see :func:`step_footprint`), and update ``u`` collects its rollout
from chunk ``u mod (K / chunk_size)`` and learns from it, so an update's working memory is that
of ``chunk_size`` twins. This is PPO with ``num_envs = chunk_size`` whose batch of twins rotates
over the K twins (every twin contributes the same number of samples); with one chunk it is
:func:`dtwin_jax.learners.ppo.make_train` exactly. With a ``DQNConfig`` or a ``VDNConfig`` it is
DQN or VDN/IQL with ``num_envs = chunk_size`` likewise (one replay buffer that every chunk feeds
in turn; with one chunk the learner's ``make_train`` exactly).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp

from dtwin_jax import _checks
from dtwin_jax.envs.wrappers import VecEnv
from dtwin_jax.parallel import num_twins, rollout


@dataclass(frozen=True)
class MemoryFootprint:
    """Bytes of a program as a function of the number of twins K: ``fixed + per_twin * K``.

    ``sizes`` are the twin counts compiled and ``totals`` their measured bytes (arguments +
    outputs + temporaries - aliased, from XLA's buffer assignment); the line goes through the
    two largest, and ``linearity_error`` is the largest relative error of the line at the other
    sizes (0 with two sizes).
    """

    per_twin_bytes: float
    fixed_bytes: float
    sizes: tuple[int, ...]
    totals: tuple[int, ...]
    linearity_error: float = 0.0

    def bytes_for(self, twins: int) -> float:
        """Bytes of the program with ``twins`` twins (the fitted line)."""
        return self.fixed_bytes + self.per_twin_bytes * twins

    def max_twins(self, budget_bytes: float) -> int:
        """The most twins whose program fits in ``budget_bytes`` (0 if not even one)."""
        budget_bytes = _checks.check_float("budget_bytes", budget_bytes, 0.0, lo_open=True)
        if self.per_twin_bytes <= 0:
            raise ValueError("per_twin_bytes is not positive: the footprint does not grow "
                             "with the twins; measure at larger sizes")
        return max(0, int((budget_bytes - self.fixed_bytes) // self.per_twin_bytes))

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"per_twin_bytes": self.per_twin_bytes, "fixed_bytes": self.fixed_bytes,
                "sizes": list(self.sizes), "totals": list(self.totals),
                "linearity_error": self.linearity_error}


def program_bytes(compiled) -> int:
    """Device bytes of a compiled executable: arguments + outputs + temporaries - aliases."""
    m = compiled.memory_analysis()
    if m is None:
        raise RuntimeError("this backend reports no memory analysis of compiled programs")
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)


def measure_footprint(build: Callable[[int], tuple[Callable, tuple]],
                      sizes: Sequence[int] = (16, 64)) -> MemoryFootprint:
    """Fit ``fixed + per_twin * K`` to the compiled bytes of ``build(K)``, through the two
    largest of ``sizes`` (two or more increasing twin counts; the others check the line).

    ``build(K) -> (jitted_fn, args)``: a ``jax.jit``-wrapped function and its arguments (arrays
    or ``jax.ShapeDtypeStruct``; nothing is run, only compiled).
    """
    sizes = _checks.check_int_tuple("sizes", sizes, lo=1)
    if len(sizes) < 2 or any(a >= b for a, b in zip(sizes, sizes[1:], strict=False)):
        raise ValueError(f"sizes must be two or more increasing twin counts; got {sizes}")
    totals = []
    for k in sizes:
        fn, args = build(k)
        totals.append(program_bytes(fn.lower(*args).compile()))
    slope = (totals[-1] - totals[-2]) / (sizes[-1] - sizes[-2])
    fixed = totals[-1] - slope * sizes[-1]
    error = max([abs(fixed + slope * k - t) / t for k, t in zip(sizes[:-2], totals, strict=False)],
                default=0.0)
    return MemoryFootprint(per_twin_bytes=float(slope), fixed_bytes=float(fixed),
                           sizes=tuple(sizes), totals=tuple(totals), linearity_error=float(error))


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree)


def _batch(env, params, k: int):
    return VecEnv(env, k).batch_params(params)


def step_footprint(env, params=None, sizes: Sequence[int] = (16, 64)) -> MemoryFootprint:
    """Bytes of one :class:`VecEnv` step of K twins of ``params`` (default: the env's), the
    state donated (as a stepping loop runs it)."""
    from dtwin_jax.learners.common import dummy_action

    one = env.default_params if params is None else params

    def build(k):
        vec = VecEnv(env, k)
        batch = _batch(env, one, k)
        key = jax.random.PRNGKey(0)
        _, state = jax.eval_shape(vec.reset, key, batch)
        action = _abstract(dummy_action(env, one, k))
        return jax.jit(vec.step, donate_argnums=1), (key, state, action, _abstract(batch))

    return measure_footprint(build, sizes)


def rollout_footprint(env, policy: Callable, num_steps: int, params=None,
                      sizes: Sequence[int] = (16, 64),
                      info_keys: Sequence[str] = ()) -> MemoryFootprint:
    """Bytes of :func:`dtwin_jax.parallel.rollout` of K twins for ``num_steps`` steps."""
    one = env.default_params if params is None else params

    def build(k):
        def run(key, batch):
            return rollout(env, policy, batch, key, num_steps, info_keys)

        return jax.jit(run), (jax.random.PRNGKey(0), _abstract(_batch(env, one, k)))

    return measure_footprint(build, sizes)


def ppo_update_footprint(env, config, params=None,
                         sizes: Sequence[int] = (16, 64)) -> MemoryFootprint:
    """Bytes of one PPO update (rollout of ``config.num_steps`` steps + the epochs) of K twins,
    the runner state donated; ``config.num_minibatches`` must divide ``K * num_steps`` at both
    sizes."""
    from dtwin_jax.learners.ppo import make_train_chunks

    one = env.default_params if params is None else params

    def build(k):
        cfg = replace(config, num_envs=k, total_timesteps=k * config.num_steps)
        init, advance = make_train_chunks(env, _batch(env, one, k), cfg, batched_params=True)
        runner = jax.eval_shape(init, jax.random.PRNGKey(0))
        fn = jax.jit(advance, static_argnums=2, donate_argnums=0)
        return fn, (runner, 0, 1)

    return measure_footprint(build, sizes)


def chunk_size_for(footprint: MemoryFootprint, budget_bytes: float, twins: int) -> int:
    """The largest divisor of ``twins`` whose program fits in ``budget_bytes`` (raises
    ``ValueError`` when even one twin does not fit)."""
    twins = _checks.check_int("twins", twins, lo=1)
    limit = min(footprint.max_twins(budget_bytes), twins)
    if limit < 1:
        raise ValueError(f"budget_bytes={budget_bytes:.3g} holds no twin: one needs "
                         f"{footprint.bytes_for(1):.3g} bytes")
    return max(c for c in range(1, limit + 1) if twins % c == 0)


def rollout_chunked(env, policy: Callable, params_batch: Any, key: jax.Array, num_steps: int,
                    chunk_size: int, info_keys: Sequence[str] = ()) -> dict:
    """:func:`~dtwin_jax.parallel.rollout` of K twins, ``chunk_size`` at a time (jittable).

    Twin ``i`` runs with the key ``split(key, K)[i]`` as a one-twin rollout, so its result is
    the same for every ``chunk_size``. Returns the rollout's entries as ``[num_steps, K,
    ...]``. ``chunk_size`` need not divide K (the last chunk is smaller).
    """
    num_steps = _checks.check_int("num_steps", num_steps, lo=1)
    k = num_twins(params_batch)
    chunk_size = _checks.check_int("chunk_size", chunk_size, lo=1, hi=k)

    def one_twin(args):
        params, twin_key = args
        params = jax.tree.map(lambda x: x[None], params)
        traj = rollout(env, policy, params, twin_key, num_steps, info_keys)
        return jax.tree.map(lambda x: x[:, 0], traj)

    traj = jax.lax.map(one_twin, (params_batch, jax.random.split(key, k)),
                       batch_size=chunk_size)
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), traj)


def make_train_chunked(env, params_batch: Any, config, chunk_size: int):
    """``train(key) -> (runner, metrics)``: one shared policy over K twins, trained in chunks.

    ``config`` picks the learner: a :class:`~dtwin_jax.learners.ppo.PPOConfig` (PPO), a
    :class:`~dtwin_jax.learners.dqn.DQNConfig` (DQN, double or dueling) or a
    :class:`~dtwin_jax.learners.vdn.VDNConfig` (VDN or IQL; its warm-up updates too rotate over
    the chunks); the value learners keep one replay buffer, fed by every chunk in turn.
    ``params_batch`` holds K twins (leading axis); ``chunk_size`` must divide K, and
    ``config.num_envs`` is set to it. ``config.total_timesteps`` counts twin steps as usual, so
    ``num_updates = total_timesteps // (chunk_size * num_steps)``, which must be a multiple of
    the number of chunks ``K / chunk_size`` (every twin then contributes equally). The returned
    runner's collector holds all K twins, ``[K / chunk_size, chunk_size, ...]``; metrics are
    ``[num_updates]`` as the learner's ``make_train``'s, which one chunk reproduces exactly.
    See the module docstring; jit the result.
    """
    from dtwin_jax.learners import dqn, ppo, vdn

    if not isinstance(config, ppo.PPOConfig | dqn.DQNConfig | vdn.VDNConfig):
        raise TypeError(f"config must be a PPOConfig, a DQNConfig or a VDNConfig, got "
                        f"{type(config).__name__}")
    k = num_twins(params_batch)
    chunk_size = _checks.check_int("chunk_size", chunk_size, lo=1, hi=k)
    if k % chunk_size:
        raise ValueError(f"chunk_size={chunk_size} must divide the number of twins ({k})")
    chunks = k // chunk_size
    config = replace(config, num_envs=chunk_size)
    if config.num_updates % chunks:
        raise ValueError(
            f"total_timesteps={config.total_timesteps} gives {config.num_updates} updates of "
            f"chunk_size * num_steps = {chunk_size * config.num_steps} twin steps; it must be "
            f"a multiple of the {chunks} chunks")
    split = jax.tree.map(lambda x: x.reshape(chunks, chunk_size, *x.shape[1:]), params_batch)

    def chunk_params(j):
        return jax.tree.map(lambda x: x[j], split)

    # (update indices, update(runner, i, chunk's params) -> (runner, metrics)) per phase
    updates = jnp.arange(config.num_updates)
    if isinstance(config, ppo.PPOConfig):
        init, update = ppo._parts(env, chunk_params(0), config, batched_params=True,
                                  progress=False)
        phases = [(updates, update)]
    elif isinstance(config, dqn.DQNConfig):
        agent = dqn.make_agent(env, jax.tree.map(lambda x: x[0], params_batch), config)

        def init(key, params=None):
            return agent.init(key, chunk_params(0) if params is None else params)

        # DQN's schedule follows the runner's own step counter, not the update index
        phases = [(updates, lambda runner, i, params: agent.update(runner, params))]
    else:  # VDN / IQL: warm-up updates only collect, then every update learns too
        init, update = vdn._parts(env, chunk_params(0), config, batched_params=True,
                                  progress=False)
        warm = config.warmup_updates
        phases = [(updates[:warm], lambda r, i, p: update(r, i, False, p)),
                  (updates[warm:], lambda r, i, p: update(r, i, True, p))]

    def train(key):
        runner = init(key)  # the network and optimiser (and, with one chunk, its twins)
        if chunks == 1:
            collectors = jax.tree.map(lambda x: x[None], runner.collector)
        else:  # every chunk's twins reset with their own key
            reset_keys = jax.random.split(jax.random.fold_in(key, 1), chunks)
            collectors = jax.vmap(lambda kk, p: init(kk, p).collector)(reset_keys, split)

        def body(step, carry, i):
            runner, collectors = carry
            j = i % chunks
            runner = runner._replace(collector=jax.tree.map(lambda c: c[j], collectors))
            runner, metrics = step(runner, i, chunk_params(j))
            collectors = jax.tree.map(lambda c, x: c.at[j].set(x), collectors,
                                      runner.collector)
            return (runner, collectors), metrics

        carry, metrics = (runner, collectors), []
        for idx, step in phases:
            carry, m = jax.lax.scan(functools.partial(body, step), carry, idx)
            metrics.append(m)
        runner, collectors = carry
        metrics = jax.tree.map(lambda *m: jnp.concatenate(m), *metrics)
        return runner._replace(collector=collectors), metrics

    return train
