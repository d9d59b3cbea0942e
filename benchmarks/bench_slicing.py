"""slicing-v0 env steps per second vs number of twins, against two NumPy peers, in one run.

One env step = one decision = 2000 slots of 0.5 ms simulated packet by packet (100 users,
5-packet queues). Implementations:

* ours   - ``jax.jit(jax.vmap(env.step))`` over B twins (one fused ``lax.scan`` per step);
* peer a - NumPy as the authors' simulator is: one twin at a time, Python loop over slots,
  vectorised over users (``peers/slicing_numpy.py`` with B = 1); its rate does not depend on
  B, so it is measured on a few twin-steps and quoted for every B;
* peer b - the same NumPy code batched over all B twins (loop over slots).

Before timing, both peers replay the JAX env's draws for two twins and must reproduce its
counters exactly. Timings: best of ``--repeats`` calls (the machine may be shared; the
median is reported too). Usage: ``python benchmarks/bench_slicing.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import slicing_numpy  # noqa: E402

from dtwin_jax.envs.slicing import SlicingEnv  # noqa: E402
from dtwin_jax.envs.slicing import draws as D  # noqa: E402
from dtwin_jax.reporting import machine_info, write_results  # noqa: E402

COUNTERS = ("arrived", "delivered", "satisfied", "blocked", "dropped", "timer")


def _np_params(params) -> dict:
    return {k: np.asarray(v) for k, v in vars(params).items()}


def _state_arrays(states) -> tuple:
    return (np.asarray(states.slice_id), np.asarray(states.pathloss_db),
            np.asarray(states.timer))


def check_peers(env, params, num_slots: int = 200) -> None:
    """Both peers replay the JAX draws of 2 twins and match the JAX counters exactly."""
    small = SlicingEnv(num_slots=num_slots)
    keys = jax.random.split(jax.random.key(11), 2)
    _, states = jax.vmap(small.reset, (0, None))(keys, params)
    rbs = jnp.asarray([small.rbs_table[3], small.rbs_table[20]], jnp.int32)
    got = jax.vmap(small.simulate, (0, 0, 0, None))(keys, states, rbs, params)
    seeds = jax.vmap(D.decision_seed)(keys)
    draws = jax.vmap(D.draw_decision, (0, None, 0, None))(seeds, num_slots, states.slice_id,
                                                         params)
    draws = {k: np.asarray(v) for k, v in vars(draws).items()}
    sl, pl, tm = _state_arrays(states)
    p = _np_params(params)
    batched = slicing_numpy.run_window(sl, pl, tm, np.asarray(rbs), p,
                                       slicing_numpy.ReplaySource(draws), num_slots,
                                       small.queue_len, float(small.bandwidth_hz))
    for i in range(2):
        one = slicing_numpy.run_window(
            sl[i:i + 1], pl[i:i + 1], tm[i:i + 1], np.asarray(rbs[i:i + 1]), p,
            slicing_numpy.ReplaySource({k: v[i:i + 1] for k, v in draws.items()}), num_slots,
            small.queue_len, float(small.bandwidth_hz))
        for name in COUNTERS:
            want = np.asarray(getattr(got, name))[i]
            np.testing.assert_array_equal(batched[name][i], want, err_msg=f"peer b {name}")
            np.testing.assert_array_equal(one[name][0], want, err_msg=f"peer a {name}")
        np.testing.assert_allclose(batched["se"][i], float(got.se[i]), rtol=1e-5)


def _best_median(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def bench_jax(env, params, num_twins: int, repeats: int) -> tuple[float, float]:
    keys = jax.random.split(jax.random.key(0), num_twins)
    _, states = jax.jit(jax.vmap(env.reset, (0, None)))(keys, params)
    actions = jnp.full((num_twins,), env.action_from_split((4, 3, 3)), jnp.int32)
    step = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))
    jax.block_until_ready(step(keys, states, actions, params))  # compile
    return _best_median(lambda: jax.block_until_ready(step(keys, states, actions, params)),
                        repeats)


def bench_numpy(env, params, num_twins: int, repeats: int) -> tuple[float, float]:
    """One decision of ``num_twins`` twins batched (peer b; peer a with num_twins = 1)."""
    keys = jax.random.split(jax.random.key(0), num_twins)
    _, states = jax.vmap(env.reset, (0, None))(keys, params)
    sl, pl, tm = _state_arrays(states)
    rbs = np.tile(env.rbs_table[env.action_from_split((4, 3, 3))], (num_twins, 1))
    p = _np_params(params)
    rng = np.random.default_rng(0)

    def run():
        src = slicing_numpy.RngSource(rng, p, num_twins, env.num_users)
        slicing_numpy.run_window(sl, pl, tm, rbs, p, src, env.num_slots, env.queue_len,
                                 float(env.bandwidth_hz))

    return _best_median(run, repeats)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twins", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-a-repeats", type=int, default=3)
    parser.add_argument("--scan-unroll", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="twins 1 and 16, 2 repeats")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"
                                             / "bench_slicing.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.twins, args.repeats, args.peer_a_repeats = [1, 16], 2, 2
    env = SlicingEnv(scan_unroll=args.scan_unroll)
    params = env.default_params
    check_peers(env, params)
    print("peers reproduce the JAX counters on replayed draws")
    peer_a = bench_numpy(env, params, 1, args.peer_a_repeats)
    rows = []
    print(f"{'twins':>6} {'jax steps/s':>12} {'peer a':>9} {'peer b':>9} {'x a':>8} {'x b':>7}")
    for b in args.twins:
        ours = bench_jax(env, params, b, args.repeats)
        peer_b = bench_numpy(env, params, b, max(1, min(args.repeats, 2)))
        row = {
            "twins": b,
            "jax_steps_per_s": b / ours[0], "jax_steps_per_s_median": b / ours[1],
            "peer_a_steps_per_s": 1 / peer_a[0], "peer_b_steps_per_s": b / peer_b[0],
        }
        row["speedup_vs_a"] = row["jax_steps_per_s"] / row["peer_a_steps_per_s"]
        row["speedup_vs_b"] = row["jax_steps_per_s"] / row["peer_b_steps_per_s"]
        rows.append(row)
        print(f"{b:>6} {row['jax_steps_per_s']:>12.2f} {row['peer_a_steps_per_s']:>9.2f} "
              f"{row['peer_b_steps_per_s']:>9.2f} {row['speedup_vs_a']:>8.1f} "
              f"{row['speedup_vs_b']:>7.1f}")
    result = {"benchmark": "slicing-v0 env steps/s (1 step = 2000 slots, 100 users)",
              "backend": jax.default_backend(), "machine": machine_info(), "rows": rows,
              "peer_a_seconds_per_step_best_median": list(peer_a)}
    write_results(result, args.out, config=vars(args))
    return result


if __name__ == "__main__":
    main()
