"""Cost of diffusion-generated mobility inside the compiled PPO loop.

    python benchmarks/bench_generated_loop.py [--twins 16] [--users 64] [--updates 2]
                                              [--refresh R ...]

Trains PPO on ``association-v0`` twins with identical sizes and mobility:

- ``playback``: users replay fixed trajectories (``Playback``, the cost floor);
- ``generated_all_fresh``: every user gets a new Map2Traj sample at every reset
  (``GeneratedMobility`` with ``refresh == bank_size == users``, ``augment=False``);
- ``generated_bank_rR``: each reset samples R fresh trajectories into a bank of ``2 * users``
  and redraws the users from it (the default fast mode; R defaults to ``users // 8``).

The DDIM sampler runs inside the jitted ``lax.scan`` whenever a twin resets. Reports
agent-steps/s of each (compilation excluded) and the slowdown relative to playback.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax.envs.association import AssociationEnv
from dtwin_jax.learners.ppo import PPOConfig, make_train
from dtwin_jax.mobility import Playback
from dtwin_jax.mobility.generated import GeneratedMobility
from dtwin_jax.reporting import machine_info, write_results
from dtwin_jax.twins.map2traj.maps import procedural_street_map, rasterize, square_bounds
from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
AREA_M = 1000.0


def _mobility_models(users: int, ddim_steps: int, refreshes: list[int]):
    """``{row name: (model, params)}``; all rows share the network, map and bank samples."""
    graph = procedural_street_map(7, size_m=AREA_M)
    bounds = np.asarray(square_bounds(graph))
    raster = np.asarray(rasterize(graph, 64, bounds=bounds))
    gen, gen_params = GeneratedMobility.from_checkpoint(
        SHIPPED_CHECKPOINT, raster, bounds, users, num_steps=ddim_steps,
        bank_size=2 * users, refresh=min(refreshes))
    play = Playback(users, gen.config.unet.length, loop=True)
    play_params = play.make_params(traj=gen_params.bank[:users], area_min=bounds[0],
                                   area_max=bounds[1], sample_dt=float(gen_params.sample_dt),
                                   dt=float(gen_params.dt))
    fresh = GeneratedMobility(users, gen.config, raster.shape, ddim_steps, bank_size=users,
                              refresh=users, augment=False)
    fresh_params = gen_params.replace(bank=gen_params.bank[:users])
    fresh.check_params(fresh_params)
    models = {"playback": (play, play_params), "generated_all_fresh": (fresh, fresh_params)}
    for r in refreshes:
        bank = GeneratedMobility(users, gen.config, raster.shape, ddim_steps,
                                 bank_size=2 * users, refresh=r)
        models[f"generated_bank_r{r}"] = (bank, gen_params)
    return models, float(bounds[1, 0] - bounds[0, 0])


def _time_training(env, params, config, repeats: int) -> dict:
    train = jax.jit(make_train(env, params, config))
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    compiled = train.lower(key).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(key))
    best = np.inf
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.PRNGKey(r + 1)))
        best = min(best, time.perf_counter() - t0)
    agent_steps = config.num_updates * config.num_envs * config.num_steps * env.num_agents
    return {"compile_s": compile_s, "best_s": best, "agent_steps": agent_steps,
            "agent_steps_per_s": agent_steps / best}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twins", type=int, default=16)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--updates", type=int, default=2)
    parser.add_argument("--ddim-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--refresh", type=int, nargs="+", default=None,
                        help="fresh samples per twin per reset of the bank rows "
                             "(default: users // 8)")
    args = parser.parse_args(argv)
    args.refresh = args.refresh or [max(1, args.users // 8)]
    config = PPOConfig(num_envs=args.twins, num_steps=64,
                       total_timesteps=args.updates * args.twins * 64, num_minibatches=4,
                       update_epochs=2)
    models, area_m = _mobility_models(args.users, args.ddim_steps, args.refresh)
    rows = {}
    for name, (model, mob_params) in models.items():
        env = AssociationEnv(num_bs=22, num_macro=4, max_users=args.users, mobility=model,
                             area_m=area_m, shadow_cell_m=20.0)
        params = env.default_params.replace(mobility=mob_params,
                                            num_users=jnp.int32(args.users),
                                            episode_length=jnp.int32(64))
        rows[name] = _time_training(env, params, config, args.repeats)
        rows[name]["samples_per_twin_per_reset"] = getattr(model, "refresh", 0)
    floor = rows["playback"]["agent_steps_per_s"]
    print(f"{'mobility':>22} {'samples/reset':>13} {'agent-steps/s':>14} {'slowdown':>9} "
          f"{'compile s':>9}")
    for name, row in rows.items():
        row["slowdown_vs_playback"] = floor / row["agent_steps_per_s"]
        print(f"{name:>22} {row['samples_per_twin_per_reset']:>13} "
              f"{row['agent_steps_per_s']:>14.3g} {row['slowdown_vs_playback']:>8.2f}x "
              f"{row['compile_s']:>9.1f}")
    print(f"(per twin, one reset per 64-step episode; {args.ddim_steps} guided DDIM steps)")
    result = {"benchmark": "generated_loop", "config": vars(args), "rows": rows,
              "machine": machine_info()}
    write_results(result, os.path.join(RESULTS, "bench_generated_loop.json"), config=vars(args))
    return result


if __name__ == "__main__":
    main()
