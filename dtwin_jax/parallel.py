"""Parallel twins: heterogeneous batches of params, rollouts, shared-policy training, sharding.

A batch of K twins is one params struct whose leaves carry a leading ``[K]`` axis (built by
:func:`twin_params` or :func:`stack_params`); every twin has its own user density, random
stream and params, and all of them run under one ``vmap``
(:class:`~dtwin_jax.envs.wrappers.VecEnv`). Twins whose episode ends reset inside the step.
:func:`rollout` and :func:`summarize_rollout` work for any env; :func:`train_parallel`
trains ONE shared policy on all twins at once with any learner of the ``make_train`` shape
(PPO by default), and several seeds under one ``jax.vmap``. :func:`summarize` is the
association twin's summary (throughput percentiles, Jain, utility, handovers).

Devices. :func:`shard_twins` places the twin axis of a batch on a ``jax.sharding.Mesh`` over
all devices (``NamedSharding(mesh, P("twins"))``); a ``jit`` of a vmapped function of sharded
inputs then runs each device's twins locally (XLA's SPMD partitioner), with no code change.
:func:`train_sharded` trains one shared policy data-parallel this way: the env params (and so
every rollout) are split over the twin axis, the network parameters and optimizer state are
replicated, and the loss being a mean over twins, XLA inserts the all-reduce that averages the
gradients; the result equals the one-device run to float tolerance (summation order differs).
Test it on CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``.

Multi-host: start every process with :mod:`dtwin_jax.launch` (``python -m dtwin_jax.launch
--num-processes P --process-id i --coordinator host0:1234 -- MODULE ARGS``), which calls
``jax.distributed.initialize`` before any other JAX use; ``jax.devices()`` then lists the
devices of all processes and :func:`make_mesh` spans them. Each process builds the same global
batch of params (same seeds) and calls :func:`shard_twins` / :func:`train_sharded`, which hand
each process only its own twins (``jax.make_array_from_callback``); the gradient mean crosses
processes through XLA's collectives (on CPU, gloo; see :mod:`dtwin_jax.launch`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dtwin_jax import _checks
from dtwin_jax.envs.base import AgentObs
from dtwin_jax.envs.wrappers import VecEnv

TWIN_AXIS = "twins"


def stack_params(params_list: Sequence[Any]) -> Any:
    """Stack K params structs of one structure into one batch (leading ``[K]`` axis)."""
    if not params_list:
        raise ValueError("params_list must hold at least one params struct")
    return jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])),
                        *params_list)


def spread(lo: int, hi: int, num: int) -> np.ndarray:
    """``num`` integers evenly spread over ``[lo, hi]`` (rounded), e.g. user densities."""
    lo = _checks.check_int("lo", lo, lo=0)
    hi = _checks.check_int("hi", hi, lo=lo)
    num = _checks.check_int("num", num, lo=1)
    if num == 1:
        return np.array([round((lo + hi) / 2)])
    return np.rint(np.linspace(lo, hi, num)).astype(int)


def twin_params(
    env,
    num_users: Sequence[int] | None = None,
    mobility: Sequence[dict] | None = None,
    per_twin: dict[str, Sequence] | None = None,
    **shared,
) -> Any:
    """A batch of K twins of ``env``, one ``env.make_params(...)`` per twin, stacked.

    ``per_twin`` maps params fields to K values each (one per twin); ``num_users`` and
    ``mobility`` (a dict of mobility overrides per twin) are shorthands for
    ``per_twin={"num_users": ..., "mobility": ...}``; ``shared`` fields are the same for all
    twins. Every twin is validated by ``env.make_params`` (integer fields reject non-integers
    such as ``num_users=2.9``). Random streams differ per twin through the keys of the
    rollout, not the params.
    """
    per_twin = dict(per_twin or {})
    for name, values in (("num_users", num_users), ("mobility", mobility)):
        if values is not None:
            if name in per_twin:
                raise ValueError(f"{name} given twice (argument and per_twin)")
            per_twin[name] = values
    if not per_twin:
        raise ValueError("twin_params needs at least one per-twin field (e.g. num_users=[...])")
    lengths = {name: len(values) for name, values in per_twin.items()}
    k = next(iter(lengths.values()))
    if k < 1 or any(n != k for n in lengths.values()):
        raise ValueError(f"per-twin fields need one entry per twin, the same number each "
                         f"(at least 1); got lengths {lengths}")
    made: dict = {}  # one validated params struct per distinct twin set-up
    twins = []
    for i in range(k):
        kw = {name: values[i] for name, values in per_twin.items()}
        tag = repr(sorted((n, sorted(v.items()) if isinstance(v, dict) else np.asarray(v).tolist())
                          for n, v in kw.items()))
        if tag not in made:
            made[tag] = env.make_params(**shared, **kw)
        twins.append(made[tag])
    return stack_params(twins)


def num_twins(params_batch: Any) -> int:
    """K, the leading axis of a params batch."""
    return int(jax.tree.leaves(params_batch)[0].shape[0])


def rollout(
    env,
    policy: Callable,
    params_batch: Any,
    key: jax.Array,
    num_steps: int,
    info_keys: Sequence[str] = (),
) -> dict:
    """Run ``policy(key, obs, state, params) -> action`` (one twin) in K twins for
    ``num_steps`` steps of a :class:`VecEnv`.

    Pure and jittable (``num_steps`` static). Returns ``reward`` and the ``info_keys`` entries
    stacked as ``[num_steps, K, ...]``, plus, for a multi-agent env, ``agent_mask``
    ``[num_steps, K, A]``: the agents that acted on each step.
    """
    num_steps = _checks.check_int("num_steps", num_steps, lo=1)
    k = num_twins(params_batch)
    vec = VecEnv(env, k)
    k_reset, k_run = jax.random.split(key)
    obs, state = vec.reset(k_reset, params_batch)

    def body(carry, key_t):
        obs, state = carry
        k_act, k_step = jax.random.split(key_t)
        action = jax.vmap(policy)(jax.random.split(k_act, k), obs, state, params_batch)
        obs_next, state, reward, _, _, info = vec.step(k_step, state, action, params_batch)
        out = {name: info[name] for name in info_keys}
        out["reward"] = reward
        if isinstance(obs, AgentObs):
            out["agent_mask"] = obs.agent_mask
        return (obs_next, state), out

    _, traj = jax.lax.scan(body, (obs, state), jax.random.split(k_run, num_steps))
    return traj


def summarize_rollout(traj: dict, keys: Sequence[str]) -> dict:
    """Means of ``traj[key]`` over steps, twins and, for per-agent entries (shaped like
    ``traj["agent_mask"]``), the agents that acted; NumPy floats, outside jit."""
    mask = np.asarray(traj["agent_mask"]) if "agent_mask" in traj else None
    out = {}
    for name in keys:
        x = np.asarray(traj[name], np.float64)
        per_agent = mask is not None and x.shape == mask.shape
        out[name] = float(x[mask].mean() if per_agent and mask.any() else x.mean())
    return out


#: the ``info_keys`` a :func:`rollout` of the association twin needs for :func:`summarize`
SUMMARY_INFO_KEYS = ("throughput", "cell_edge", "jain", "sum_log_utility", "handovers")


def summarize(traj: dict) -> dict:
    """Pooled metrics of a :func:`rollout` of the association twin (NumPy, outside jit).

    Needs ``info_keys=SUMMARY_INFO_KEYS``.
    ``cell_edge`` / ``median`` / ``mean_throughput``: 5th / 50th percentile and mean of all
    (user, step) throughputs of active users (bit/s); ``cell_edge_step``: mean over steps and
    twins of the per-step 5th percentile; ``jain``: mean per-step Jain index;
    ``network_utility``: mean per-step sum-log utility; ``handovers_per_user_step``.
    """
    thr = np.asarray(traj["throughput"])[np.asarray(traj["agent_mask"])]
    active = max(float(np.asarray(traj["agent_mask"]).sum()), 1.0)
    means = summarize_rollout(traj, ("cell_edge", "jain", "sum_log_utility"))
    return {
        "cell_edge": float(np.percentile(thr, 5)),
        "median": float(np.percentile(thr, 50)),
        "mean_throughput": float(thr.mean()),
        "cell_edge_step": means["cell_edge"],
        "jain": means["jain"],
        "network_utility": means["sum_log_utility"],
        "handovers_per_user_step": float(np.sum(traj["handovers"]) / active),
    }


def train_parallel(env, params_batch: Any, config, key: jax.Array, num_seeds: int = 1,
                   make_train: Callable | None = None):
    """Train one shared policy over the K twins of ``params_batch`` (jitted).

    ``make_train(env, params_batch, config, batched_params=True) -> train(key)`` builds the
    learner (default: :func:`dtwin_jax.learners.ppo.make_train`); ``config`` is its config,
    with ``num_envs`` set to K here. ``num_seeds > 1`` runs that many independent seeds as
    ``jax.jit(jax.vmap(train))`` (every output then has a leading ``[num_seeds]`` axis).
    Returns ``(runner_state, metrics, config)``.
    """
    if make_train is None:
        from dtwin_jax.learners.ppo import make_train

    num_seeds = _checks.check_int("num_seeds", num_seeds, lo=1)
    config = replace(config, num_envs=num_twins(params_batch))
    train = make_train(env, params_batch, config, batched_params=True)
    if num_seeds == 1:
        runner, metrics = jax.jit(train)(key)
    else:
        runner, metrics = jax.jit(jax.vmap(train))(jax.random.split(key, num_seeds))
    return runner, metrics, config


def make_mesh(devices: Sequence[jax.Device] | None = None, axis_name: str = TWIN_AXIS) -> Mesh:
    """A 1-D device mesh named ``axis_name`` over ``devices`` (default: all devices)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must not be empty")
    return Mesh(np.asarray(devices), (axis_name,))


def shard_twins(tree: Any, mesh: Mesh | None = None, axis_name: str = TWIN_AXIS) -> Any:
    """Place every leaf of a twin batch with its leading axis split over ``mesh``.

    Leaves whose leading axis does not divide evenly by the mesh size (or scalars) are
    replicated. Returns the same pytree of (committed, sharded) arrays.
    """
    mesh = make_mesh(axis_name=axis_name) if mesh is None else mesh
    size = mesh.shape[axis_name]
    split = NamedSharding(mesh, PartitionSpec(axis_name))
    whole = NamedSharding(mesh, PartitionSpec())

    def place(x):
        ok = np.ndim(x) >= 1 and np.shape(x)[0] % size == 0
        return _put(x, split if ok else whole)

    return jax.tree.map(place, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf of ``tree`` whole on every device of ``mesh`` (e.g. a PRNG key)."""
    whole = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: _put(x, whole), tree)


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    """``x`` placed with ``sharding``; across processes every process passes the same global
    value and keeps only the pieces of its own devices."""
    if sharding.is_fully_addressable:
        return jax.device_put(jnp.asarray(x), sharding)
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def train_sharded(env, params_batch: Any, config, key: jax.Array, mesh: Mesh | None = None,
                  make_train: Callable | None = None, axis_name: str = TWIN_AXIS):
    """Data-parallel :func:`train_parallel` (one seed): the K twins split over ``mesh``.

    ``mesh``: a 1-D mesh named ``axis_name`` (default :func:`make_mesh`, all devices of all
    processes); its size must divide K. The params batch is placed with :func:`shard_twins` and
    passed to one ``jit`` as an argument, so every rollout runs on the devices of its twins;
    ``key`` is replicated, hence the network is initialised identically everywhere and stays
    replicated, gradients being averaged by the all-reduce XLA inserts for the mean over twins.
    Returns ``(runner_state, metrics, config)`` like :func:`train_parallel`; the env state in
    the runner stays sharded (across processes only the network parameters, optimizer state and
    metrics, being replicated, are readable on every process).
    """
    if make_train is None:
        from dtwin_jax.learners.ppo import make_train

    mesh = make_mesh(axis_name=axis_name) if mesh is None else mesh
    k, size = num_twins(params_batch), mesh.shape[axis_name]
    if k % size:
        raise ValueError(f"the number of twins ({k}) must be a multiple of the mesh size "
                         f"({size} devices)")
    config = replace(config, num_envs=k)

    def run(key, params):
        return make_train(env, params, config, batched_params=True)(key)

    runner, metrics = jax.jit(run)(replicate(key, mesh), shard_twins(params_batch, mesh,
                                                                    axis_name))
    return runner, metrics, config
