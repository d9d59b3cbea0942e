"""Speed of ``association-v0``: env steps/s and user-steps/s vs number of twins, compile time,
compiled memory, against mobile-env's large scenario and a NumPy reference of the same physics
(one twin at a time, and batched over twins) in the same run; PPO training throughput.

    python benchmarks/bench_association.py [--max-twins 16384] [--quick]

Our env is configured like mobile-env's large scenario (13 BSs at its positions, 30 users,
300 m x 300 m, random waypoint) but keeps its own physics: 38.901 UMi pathloss with LOS
probability, a correlated shadowing field (20 m grid), interference from every BS and
load-coupled rates. Actions come from the max-SINR baseline (a masked argmax per user).
Timings exclude compilation (reported separately); ``memory_mb`` is XLA's compiled-program
estimate (arguments + outputs + temporaries) of the timed rollout. mobile-env is measured
before and after our sizes and the ratios use the mean of the two (the CPU is shared).

NumPy peers (``peers/association_numpy.py``, float32, the same physics and max-SINR policy, no
auto-reset), from the twins our rollout starts from (their reset states; before timing, the
peer's SINR, candidates and features at those states must match the env's):

* one twin at a time (``numpy_one_twin``): ``step`` on B = 1 states in a Python loop over
  min(B, 4) twins x ``--numpy-steps`` steps, measured at every twin count;
* batched (``numpy_batched``): ``step`` on all B twins at once, ``clip(8192 / B, 4, 64)``
  steps, best of 2.

Each side gets one thread (``one_thread.py``, unless the environment says otherwise):
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false OPENBLAS_NUM_THREADS=1``, as in the recorded run.
"""

from __future__ import annotations

import one_thread  # noqa: F401  (sets the thread counts before NumPy and JAX load)

# isort: split
import argparse  # noqa: E402
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

import association_numpy  # noqa: E402
import mobile_env_peer  # noqa: E402

from dtwin_jax.envs.association import AssociationEnv, max_sinr_policy  # noqa: E402
from dtwin_jax.parallel import SUMMARY_INFO_KEYS, rollout, twin_params  # noqa: E402
from dtwin_jax.reporting import machine_info, write_results  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def mobile_env_like() -> tuple[AssociationEnv, object]:
    env = AssociationEnv(num_bs=13, num_macro=0, max_users=30, num_candidates=4,
                         mobility="waypoint", area_m=mobile_env_peer.LARGE_SIZE_M,
                         shadow_cell_m=20.0)
    params = env.make_params(bs_xy=np.asarray(mobile_env_peer.LARGE_STATIONS, np.float32),
                             num_users=30, episode_length=100_000)
    return env, params


def time_twins(env, params, num_twins: int, num_steps: int, repeats: int = 3):
    """Our row at ``num_twins`` twins, and ``(obs, state)`` of the twins reset (batched)."""
    batch = twin_params(env, [int(params.num_users)] * num_twins,
                        bs_xy=np.asarray(params.bs_xy), episode_length=100_000)
    policy = max_sinr_policy(env)

    def run(key, batch):
        traj = rollout(env, policy, batch, key, num_steps, info_keys=("mean_throughput",))
        return traj["mean_throughput"].mean()

    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(key, batch).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    mem_mb = None
    if mem is not None:
        mem_mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                  + mem.temp_size_in_bytes) / 2**20
    compiled(key, batch).block_until_ready()  # warm
    best = np.inf
    for r in range(repeats):
        t0 = time.perf_counter()
        compiled(jax.random.PRNGKey(r + 1), batch).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    # the rollout includes one reset of every twin; time it alone to report and subtract
    reset = jax.jit(jax.vmap(env.reset_env))
    keys = jax.random.split(key, num_twins)
    start = jax.block_until_ready(reset(keys, batch))
    t0 = time.perf_counter()
    jax.block_until_ready(reset(keys, batch))
    reset_s = time.perf_counter() - t0
    step_s = max(best - reset_s, 1e-9)
    users = int(params.num_users)
    return {
        "num_twins": num_twins,
        "num_steps": num_steps,
        "compile_s": compile_s,
        "rollout_s": best,
        "reset_s": reset_s,
        "env_steps_per_s": num_twins * num_steps / step_s,
        "user_steps_per_s": num_twins * num_steps * users / step_s,
        "memory_mb": mem_mb,
    }, start


def check_numpy_peer(env, p, obs, st: dict, max_twins: int = 64) -> None:
    """The peer's SINR, candidates, mask and features at the reset states ``st`` (first
    ``max_twins`` twins) match the env's (with ``decision_prob = 1``, as here, every user
    holds a decision token whatever the draw)."""
    part = jax.tree.map(lambda x: x[:max_twins], st)
    sinr = association_numpy.full_load_sinr(part, part["mob"]["pos"], p)
    np.testing.assert_allclose(sinr, part["sinr"], rtol=1e-4, atol=1e-30)
    feats, cand, mask = association_numpy.observe(
        np.zeros(part["active"].shape, np.float32), part["active"], part["assoc"], part["sinr"],
        p, env.num_candidates)
    np.testing.assert_array_equal(cand, part["candidates"])
    np.testing.assert_array_equal(mask, part["mask"])
    np.testing.assert_allclose(feats, np.asarray(obs.features)[:max_twins], atol=1e-5)


def numpy_batched(p, st: dict, num_steps: int, repeats: int = 2) -> dict:
    """Peer (b): ``association_numpy.step`` on all twins of ``st`` at once; best of
    ``repeats`` runs of ``num_steps`` steps (env steps/s of the whole batch)."""
    best = np.inf
    for r in range(repeats):
        rng, state = np.random.default_rng(r), st
        t0 = time.perf_counter()
        for _ in range(num_steps):
            _, state, _, _ = association_numpy.step(rng, state, p)
        best = min(best, time.perf_counter() - t0)
    twins = len(st["t"])
    return {"twins": twins, "steps": num_steps, "seconds": best,
            "env_steps_per_s": twins * num_steps / best}


def numpy_one_twin(p, st: dict, num_twins: int, num_steps: int) -> dict:
    """Peer (a): ``association_numpy.step`` on one twin at a time (B = 1 states), a Python loop
    over the first ``num_twins`` twins of ``st``, ``num_steps`` steps each."""
    twins = [association_numpy.twin(st, i) for i in range(num_twins)]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for state in twins:
        for _ in range(num_steps):
            _, state, _, _ = association_numpy.step(rng, state, p)
    seconds = time.perf_counter() - t0
    return {"twins": num_twins, "steps": num_steps, "seconds": seconds,
            "env_steps_per_s": num_twins * num_steps / seconds}


def ppo_throughput(num_twins: int = 16, num_updates: int = 40) -> dict:
    """Agent-steps/s of PPO training (learning included) on the default 22-BS map-free twin,
    and the wall-clock at which training cell edge first beats max-SINR's on the same twins."""
    from dtwin_jax.learners.ppo import PPOConfig, make_train
    from dtwin_jax.parallel import spread, summarize

    env = AssociationEnv(max_users=128, mobility="street", area_m=1000.0, shadow_cell_m=10.0)
    batch = twin_params(env, spread(30, 128, num_twins))
    steps = 256 // num_twins
    cfg = PPOConfig(num_envs=num_twins, num_steps=steps, total_timesteps=256 * num_updates,
                    num_minibatches=32, lr=1e-3, gamma=0.9, info_keys=("cell_edge",))
    train = jax.jit(make_train(env, batch, cfg, batched_params=True))
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    compiled = train.lower(key).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, metrics = compiled(key)
    jax.block_until_ready(metrics)
    train_s = time.perf_counter() - t0
    base = summarize(jax.jit(lambda k: rollout(env, max_sinr_policy(env), batch, k, steps * 4,
                                               SUMMARY_INFO_KEYS))(jax.random.PRNGKey(1)))
    curve = np.asarray(metrics["cell_edge"])
    beat = np.nonzero(curve > base["cell_edge_step"])[0]
    per_update = train_s / num_updates
    return {
        "num_twins": num_twins,
        "updates": num_updates,
        "compile_s": compile_s,
        "train_s": train_s,
        "agent_steps_per_s": 256 * num_updates * env.max_users / train_s,
        "live_agent_steps_per_s": 256 * num_updates * float(np.mean(spread(30, 128, num_twins)))
        / train_s,
        "max_sinr_cell_edge_step": base["cell_edge_step"],
        "training_cell_edge_curve": curve.tolist(),
        "seconds_to_beat_max_sinr": None if beat.size == 0 else float((beat[0] + 1) * per_update),
    }


def peer_pair(before: dict, after: dict) -> dict:
    """mobile-env measured before and after our sizes: ratios use the mean rate of the two, so
    a load change on this shared machine during the run biases them less."""
    rate = 0.5 * (before["user_steps_per_s"] + after["user_steps_per_s"])
    return dict(before, user_steps_per_s=rate, env_steps_per_s=rate / before["num_users"],
                before=before, after=after)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-twins", type=int, default=16384)
    ap.add_argument("--quick", action="store_true", help="fewer sizes, no PPO")
    ap.add_argument("--peer-steps", type=int, default=200)
    ap.add_argument("--numpy-steps", type=int, default=None,
                    help="steps per twin of the one-twin NumPy peer (default 100, 20 quick)")
    args = ap.parse_args(argv)
    numpy_steps = args.numpy_steps or (20 if args.quick else 100)
    out = {"machine": machine_info(openblas_num_threads=os.environ.get("OPENBLAS_NUM_THREADS"))}

    reason = mobile_env_peer.available()
    peer_before = None if reason else mobile_env_peer.measure(args.peer_steps)

    env, params = mobile_env_like()
    p = association_numpy.params_to_numpy(params, env.num_macro)
    sizes = [k for k in (1, 4, 16, 64, 256, 1024, 4096, 16384) if k <= args.max_twins]
    if args.quick:
        sizes = sizes[::2]
    rows = []
    for k in sizes:
        num_steps = int(np.clip(2**16 // k, 16, 512))
        row, (obs, state) = time_twins(env, params, k, num_steps)
        st = association_numpy.state_to_numpy(state)
        del state
        check_numpy_peer(env, p, obs, st)
        row["numpy_one_twin"] = numpy_one_twin(p, st, min(k, 4), numpy_steps)
        row["numpy_batched"] = numpy_batched(p, st, int(np.clip(8192 // k, 4, 64)))
        del st
        for peer in ("numpy_one_twin", "numpy_batched"):
            row[f"speedup_vs_{peer}"] = row["env_steps_per_s"] / row[peer]["env_steps_per_s"]
        rows.append(row)
        print(f"{k} twins done ({row['env_steps_per_s']:.0f} env steps/s; numpy one twin "
              f"{row['numpy_one_twin']['env_steps_per_s']:.0f}, batched "
              f"{row['numpy_batched']['env_steps_per_s']:.0f})", flush=True)
    peer = None
    if peer_before:
        peer = peer_pair(peer_before, mobile_env_peer.measure(args.peer_steps))
        for r in rows:
            r["speedup_vs_mobile_env"] = r["user_steps_per_s"] / peer["user_steps_per_s"]
    out["mobile_env"] = peer if peer else {"unavailable": reason}
    out["machine"]["load_avg_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"{'twins':>6} {'steps':>6} {'compile s':>9} {'env steps/s':>12} "
          f"{'user steps/s':>13} {'x mobile-env':>12} {'x numpy 1':>10} {'x numpy B':>10} "
          f"{'mem MB':>8}")
    for r in rows:
        speedup = r.get("speedup_vs_mobile_env", float("nan"))
        print(f"{r['num_twins']:>6} {r['num_steps']:>6} {r['compile_s']:>9.1f} "
              f"{r['env_steps_per_s']:>12.3g} {r['user_steps_per_s']:>13.3g} {speedup:>12.0f} "
              f"{r['speedup_vs_numpy_one_twin']:>10.1f} {r['speedup_vs_numpy_batched']:>10.2f} "
              f"{r['memory_mb'] or float('nan'):>8.1f}")
    out["ours_mobile_env_config"] = rows
    out["numpy_peers"] = {
        "implementation": "benchmarks/peers/association_numpy.py", "dtype": "float32",
        "numpy_one_twin": "one twin at a time: step on B = 1 states, Python loop over twins",
        "numpy_batched": "batched over twins: step on all B twins at once",
        "policy": "max-SINR", "auto_reset": False,
    }
    if peer:
        print(f"mobile-env large: {peer['user_steps_per_s']:.1f} user-steps/s (mean of "
              f"{peer['before']['user_steps_per_s']:.1f} before and "
              f"{peer['after']['user_steps_per_s']:.1f} after our sizes)")
        out["best_speedup_vs_mobile_env"] = max(r["speedup_vs_mobile_env"] for r in rows)
    if not args.quick:
        out["ppo"] = ppo_throughput()
        p = out["ppo"]
        print(f"PPO (16 twins, 22 BSs, 128 user slots): {p['agent_steps_per_s']:.3g} "
              f"agent-steps/s incl. learning; beats max-SINR cell edge after "
              f"{p['seconds_to_beat_max_sinr']} s")
    path = os.path.join(RESULTS, "bench_association.json")
    write_results(out, path, config=vars(args))
    print("wrote", path)
    return out


if __name__ == "__main__":
    main()
