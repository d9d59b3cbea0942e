"""End-to-end training throughput of every learner: compile seconds and the rate of its compiled,
warm training program vs the number of parallel twins (or the minibatch, offline).

    python benchmarks/bench_learners.py [--quick] [--only dqn cql] [--repeats 3] [--out PATH]

Each learner runs on the env the project trains it on, with the env's default construction:

* ``ppo`` (:mod:`dtwin_jax.learners.ppo`): ``association-v0`` (22 BSs, 2 km, 256 user slots,
  100 live users);
* ``vdn``, ``iql`` (:mod:`dtwin_jax.learners.vdn`): ``dnt-sync-v0`` (3 BSs = 3 agents, 12 users,
  12 RBs, 50-slot episodes);
* ``dqn``, ``double_dqn``, ``dueling_dqn`` (:mod:`dtwin_jax.learners.dqn`): ``slicing-v0``
  (100 users, 2000 slots of 0.5 ms per decision: the env dominates the cost);
* ``cql``, ``distill`` (:mod:`dtwin_jax.learners.cql`, :mod:`dtwin_jax.learners.distill`):
  offline, on a dataset of slicing-v0's shapes (3 features, 36 actions) drawn at random rather
  than collected (a gradient step's cost does not depend on the values); the distillation
  teacher is a randomly initialised slicing Q-network (hidden 256-256-128-128).

Learner settings: the learner's default config (``PPOConfig()``, ``VDNConfig()``, ...) with only
the batch (``num_envs`` online, ``batch_size`` offline) and the run length changed; DQN's
``learning_starts`` is 0 so every update trains (its compiled update computes the gradient step
either way). The row whose batch is the default one is the configuration users get by default
(``"default": true``). One program = ``jax.jit(train)`` of one whole run (init, then a
``lax.scan`` over updates of collect + learn; the init, milliseconds, is inside every call);
``compile_s`` is ``lower().compile()``, then one warm call, then the best of ``--repeats`` timed
calls (each with a new key) gives the rates:

* online learners: ``env_steps_per_s`` (twin steps collected and trained on per second) and
  ``agent_steps_per_s`` (times the agents per twin step: live users for PPO, BSs for VDN/IQL,
  1 for DQN);
* offline learners: ``gradient_updates_per_s`` and ``samples_per_s`` (times the minibatch);
* every learner: ``gradient_updates_per_s`` (Adam steps).

``--quick``: each learner's first batch, 1-2 updates (20 Adam steps offline), a smoke run whose
time is mostly the eight compiles (about 3 minutes on a loaded 2-core CPU).

The run gives XLA one thread (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``, set by
``one_thread.py`` before JAX starts unless ``XLA_FLAGS`` already names it), as
``bench_association.py``'s. No external peer: no comparable RL library (SB3, torch) is a
dependency here.
"""

from __future__ import annotations

import one_thread  # noqa: F401  (sets the thread counts before NumPy and JAX load)

# isort: split
import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dtwin_jax.envs.association import AssociationEnv  # noqa: E402
from dtwin_jax.envs.dnt_sync import DntSyncEnv  # noqa: E402
from dtwin_jax.envs.slicing import SlicingEnv  # noqa: E402
from dtwin_jax.learners import cql, distill, dqn, ppo, vdn  # noqa: E402
from dtwin_jax.reporting import machine_info, write_results  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_learners.json"
#: slicing-v0's observation size and number of actions (10 MHz in 1 MHz units)
SLICING_OBS, SLICING_ACTIONS = 3, 36
#: size of the offline dataset (transitions / states), as ``slicing_dt``'s ``random_dataset``
OFFLINE_DATASET = 400


class Program(NamedTuple):
    """One training run to compile and time, and the work one call of it does.

    ``train(key, *args)``: the run; ``env``: what it trains on; ``config``: the learner's config
    (a dataclass); ``batch``: parallel twins (online) or minibatch size (offline);
    ``env_steps``: twin steps collected per call (0 offline); ``agents``: agents per twin step;
    ``grad_updates``: Adam steps per call; ``samples``: rows of one Adam step's minibatch
    (PPO: agent slots, padded ones included; VDN/IQL: chunk steps).
    """

    train: Callable
    args: tuple
    env: str
    config: Any
    batch: int
    env_steps: int
    agents: int
    grad_updates: int
    samples: int


def ppo_program(num_envs: int, updates: int) -> Program:
    """PPO (``PPOConfig()``: 128 steps per update, 4 epochs x 4 minibatches) on default
    ``association-v0`` twins; ``num_envs`` twins, ``updates`` updates."""
    env = AssociationEnv()
    base = ppo.PPOConfig()
    cfg = dataclasses.replace(base, num_envs=num_envs,
                              total_timesteps=updates * num_envs * base.num_steps)
    params = env.default_params
    per_update = cfg.update_epochs * cfg.num_minibatches
    samples = num_envs * cfg.num_steps * env.num_agents // cfg.num_minibatches  # slot rows
    return Program(ppo.make_train(env, params, cfg), (), "association-v0", cfg, num_envs,
                   updates * num_envs * cfg.num_steps, int(params.num_users),
                   updates * per_update, samples)


def vdn_program(mixer: str, num_envs: int, updates: int) -> Program:
    """VDN or IQL (``VDNConfig()``: 50-step chunks, 4 Adam steps of 16 chunks per update) on
    default ``dnt-sync-v0`` twins; ``num_envs`` twins, ``updates`` updates."""
    env = DntSyncEnv()
    base = vdn.VDNConfig(mixer=mixer)
    cfg = dataclasses.replace(base, num_envs=num_envs,
                              buffer_size=max(base.buffer_size, num_envs),
                              total_timesteps=updates * num_envs * base.num_steps)
    return Program(vdn.make_train(env, env.default_params, cfg), (), "dnt-sync-v0", cfg,
                   num_envs, updates * num_envs * cfg.num_steps, env.num_agents,
                   updates * cfg.num_epochs, cfg.batch_size * cfg.num_steps)


def dqn_program(variant: str, num_envs: int, updates: int) -> Program:
    """DQN, double or dueling DQN (``DQNConfig()``, ``learning_starts=0``) on default
    ``slicing-v0`` twins; ``num_envs`` twins stepped once per update, ``updates`` updates."""
    env = SlicingEnv()
    base = dqn.DQNConfig(double=variant == "double_dqn", dueling=variant == "dueling_dqn",
                         learning_starts=0)
    cfg = dataclasses.replace(base, num_envs=num_envs,
                              total_timesteps=updates * num_envs * base.num_steps)
    return Program(dqn.make_train(env, env.default_params, cfg), (), "slicing-v0", cfg,
                   num_envs, updates * cfg.steps_per_update, 1, updates * cfg.num_epochs,
                   cfg.batch_size)


def _slicing_dataset(key: jax.Array, n: int) -> dqn.Transition:
    """``n`` random transitions of slicing-v0's shapes: obs/next_obs ``[n, 3]`` in
    ``[-sqrt 2, sqrt 2]``, actions in ``[0, 36)``, rewards in ``{-1, 0, 1}``, no termination."""
    k_obs, k_next, k_a, k_r = jax.random.split(key, 4)
    lim = float(np.sqrt(2.0))

    def obs(k):
        return jax.random.uniform(k, (n, SLICING_OBS), minval=-lim, maxval=lim)

    return dqn.Transition(obs(k_obs), jax.random.randint(k_a, (n,), 0, SLICING_ACTIONS),
                          jax.random.randint(k_r, (n,), -1, 2).astype(jnp.float32),
                          obs(k_next), jnp.zeros(n, bool), jnp.zeros(n, bool))


def cql_program(batch_size: int, steps: int) -> Program:
    """CQL (``CQLConfig()``: hidden 256-256-128-128, alpha 1) on a slicing-shaped dataset of
    :data:`OFFLINE_DATASET` transitions; ``steps`` Adam steps of ``batch_size`` transitions."""
    cfg = cql.CQLConfig(num_steps=steps, batch_size=batch_size)
    data = _slicing_dataset(jax.random.PRNGKey(100), OFFLINE_DATASET)
    return Program(cql.make_train(SLICING_OBS, SLICING_ACTIONS, cfg), (data,),
                   "slicing-v0 shapes (offline)", cfg, batch_size, 0, 1, steps, batch_size)


def distill_program(batch_size: int, steps: int) -> Program:
    """Distillation (``DistillConfig()``: a 16-16 student, MSE) of a 256-256-128-128 slicing
    Q-network on :data:`OFFLINE_DATASET` states; ``steps`` Adam steps of ``batch_size``."""
    cfg = distill.DistillConfig(num_steps=steps, batch_size=batch_size)
    teacher = dqn.QNetwork(SLICING_ACTIONS, dqn.slicing_preset().hidden_sizes)
    t_params = teacher.init(jax.random.PRNGKey(101), jnp.zeros((1, SLICING_OBS)))
    states = _slicing_dataset(jax.random.PRNGKey(102), OFFLINE_DATASET).obs
    fn = distill.make_distill(teacher.apply, SLICING_OBS, SLICING_ACTIONS, cfg)
    return Program(fn, (t_params, states), "slicing-v0 shapes (offline)", cfg, batch_size, 0,
                   1, steps, batch_size)


class Spec(NamedTuple):
    """How a learner is benchmarked: ``build(batch, length) -> Program``; ``batches`` of the
    full run (the default batch among them); ``default_batch``; ``length(batch)``: updates (or
    Adam steps) per call of the full run; ``quick_length``: the same for ``--quick``."""

    build: Callable[[int, int], Program]
    batches: tuple[int, ...]
    default_batch: int
    length: Callable[[int], int]
    quick_length: int


def _updates_for(steps_per_call: int, steps_per_twin: int) -> Callable[[int], int]:
    """``length(num_envs)``: updates per call that collect about ``steps_per_call`` twin steps
    when each twin steps ``steps_per_twin`` times per update (at least one update)."""
    return lambda num_envs: max(1, steps_per_call // (num_envs * steps_per_twin))


#: learner -> how it is benchmarked. A call lasts seconds on a loaded 2-core CPU: slicing-v0
#: steps at ~20-55 decisions/s whatever the batch; a VDN/IQL update's 4 Adam steps on 16 chunks
#: of 50 steps take seconds whatever the batch, so the slow learners get two batches
SPECS: dict[str, Spec] = {
    "ppo": Spec(ppo_program, (1, 4, 16), 4, _updates_for(512, 128), 1),
    "vdn": Spec(lambda b, n: vdn_program("vdn", b, n), (8, 64), 8, lambda b: 1, 1),
    "iql": Spec(lambda b, n: vdn_program("iql", b, n), (8, 64), 8, lambda b: 1, 1),
    "dqn": Spec(lambda b, n: dqn_program("dqn", b, n), (1, 4, 16), 4, _updates_for(32, 1), 2),
    "double_dqn": Spec(lambda b, n: dqn_program("double_dqn", b, n), (4, 16), 4,
                       _updates_for(32, 1), 2),
    "dueling_dqn": Spec(lambda b, n: dqn_program("dueling_dqn", b, n), (4, 16), 4,
                        _updates_for(32, 1), 2),
    "cql": Spec(cql_program, (64, 256), 64, lambda b: 200, 20),
    "distill": Spec(distill_program, (64, 256, 1024), 64, lambda b: 500, 20),
}


def time_program(prog: Program, repeats: int) -> dict:
    """Compile ``prog.train``, call it once (warm), then ``repeats`` times: ``compile_s`` and
    the best call's seconds ``call_s`` (and the median, ``call_s_median``)."""
    t0 = time.perf_counter()
    compiled = jax.jit(prog.train).lower(jax.random.PRNGKey(0), *prog.args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.PRNGKey(0), *prog.args))
    calls = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.PRNGKey(r + 1), *prog.args))
        calls.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "call_s": min(calls), "call_s_median": float(np.median(calls))}


def measure(name: str, prog: Program, default: bool, repeats: int) -> dict:
    """One JSON row: ``prog``'s timings and rates (module docstring), with the 1-minute load
    average before and after (the CPU may be shared)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t = time_program(prog, repeats)
    sec = t["call_s"]
    row = {"learner": name, "env": prog.env, "batch": prog.batch,
           "batch_is": "num_envs" if prog.env_steps else "batch_size", "default": default,
           "metric": "env_steps_per_s" if prog.env_steps else "gradient_updates_per_s",
           **t, "env_steps_per_call": prog.env_steps, "agents_per_env_step": prog.agents,
           "gradient_updates_per_call": prog.grad_updates, "samples_per_update": prog.samples,
           "gradient_updates_per_s": prog.grad_updates / sec,
           "load_avg_1m": [load, os.getloadavg()[0] if load is not None else None],
           "config": dataclasses.asdict(prog.config)}
    if prog.env_steps:
        row["env_steps_per_s"] = prog.env_steps / sec
        row["agent_steps_per_s"] = prog.env_steps * prog.agents / sec
    else:
        row["samples_per_s"] = prog.grad_updates * prog.samples / sec
    return row


def print_table(rows: list[dict]) -> None:
    """One line per row: learner, env, batch, compile seconds, headline rate and Adam steps/s."""
    print(f"{'learner':<12} {'env':<28} {'batch':>6} {'compile s':>9} {'call s':>7} "
          f"{'rate':>12} {'unit':<22} {'grad/s':>9}")
    for r in rows:
        unit = r["metric"] + (" (default)" if r["default"] else "")
        print(f"{r['learner']:<12} {r['env']:<28} {r['batch']:>6} {r['compile_s']:>9.1f} "
              f"{r['call_s']:>7.2f} {r[r['metric']]:>12.4g} {unit:<22} "
              f"{r['gradient_updates_per_s']:>9.4g}")


def main(argv=None) -> dict:
    """Command line: see the module docstring. Returns the results written to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smallest batch only, one or a few updates (a smoke run)")
    ap.add_argument("--only", nargs="+", choices=list(SPECS), default=None,
                    help="these learners only")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls after the warm one")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON path")
    args = ap.parse_args(argv)
    machine = machine_info()
    rows = []
    for name in args.only or list(SPECS):
        spec = SPECS[name]
        batches = spec.batches[:1] if args.quick else spec.batches
        for batch in batches:
            length = spec.quick_length if args.quick else spec.length(batch)
            row = measure(name, spec.build(batch, length), batch == spec.default_batch,
                          args.repeats)
            rows.append(row)
            print(f"{name} batch {batch}: {row[row['metric']]:.4g} {row['metric']} "
                  f"(compile {row['compile_s']:.1f} s)", flush=True)
    print_table(rows)
    machine["load_avg_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = {
        "benchmark": "learners", "backend": jax.default_backend(), "machine": machine,
        "rows": rows, "quick": args.quick,
        "notes": ("End-to-end rates of each learner's whole compiled training program (init "
                  "included), best of the timed calls after a warm one. No external peer: no "
                  "comparable RL library (Stable-Baselines3, torch) is installed or a "
                  "dependency. Offline learners train on random data of slicing-v0's shapes "
                  "(and distill a randomly initialised teacher): their cost does not depend on "
                  "the values. slicing-v0 simulates 2000 slots per decision, so the DQN rows "
                  "are bound by the env (compare bench_slicing.json)."),
    }
    write_results(out, args.out, config=vars(args))
    print("wrote", args.out)
    return out


if __name__ == "__main__":
    main()
