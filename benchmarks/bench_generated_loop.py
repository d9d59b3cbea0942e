"""Cost of diffusion-generated mobility inside the compiled PPO loop.

    python benchmarks/bench_generated_loop.py [--twins 16] [--users 64] [--updates 3]

Trains PPO on ``association-v0`` twins twice with identical sizes: users replaying fixed
trajectories (``Playback``, the cost floor) and users whose trajectories are freshly sampled by
the shipped Map2Traj model (DDIM inside the jitted ``lax.scan`` whenever a twin resets).
Reports agent-steps/s of each (compilation excluded) and the slowdown ratio.
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
from dtwin_jax.reporting import machine_info, write_json
from dtwin_jax.twins.map2traj.maps import procedural_street_map, rasterize, square_bounds
from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
AREA_M = 1000.0


def _envs(users: int, ddim_steps: int):
    graph = procedural_street_map(7, size_m=AREA_M)
    bounds = np.asarray(square_bounds(graph))
    raster = np.asarray(rasterize(graph, 64, bounds=bounds))
    gen, gen_params = GeneratedMobility.from_checkpoint(
        SHIPPED_CHECKPOINT, raster, bounds, users, num_steps=ddim_steps)
    length = gen.config.unet.length
    play = Playback(users, length, loop=True)
    traj = np.asarray(jax.jit(gen.sample)(jax.random.PRNGKey(0), gen_params))
    play_params = play.make_params(traj=traj, area_min=bounds[0], area_max=bounds[1],
                                   sample_dt=float(gen_params.sample_dt), dt=float(gen_params.dt))
    out = {}
    for name, model, mob_params in (("playback", play, play_params),
                                    ("generated", gen, gen_params)):
        env = AssociationEnv(num_bs=22, num_macro=4, max_users=users, mobility=model,
                             area_m=float(bounds[1, 0] - bounds[0, 0]), shadow_cell_m=20.0)
        params = env.default_params.replace(mobility=mob_params, num_users=jnp.int32(users),
                                            episode_length=jnp.int32(64))
        out[name] = (env, params)
    return out


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
    args = parser.parse_args(argv)
    config = PPOConfig(num_envs=args.twins, num_steps=64,
                       total_timesteps=args.updates * args.twins * 64, num_minibatches=4,
                       update_epochs=2)
    rows = {}
    for name, (env, params) in _envs(args.users, args.ddim_steps).items():
        rows[name] = _time_training(env, params, config, args.repeats)
        print(f"{name:>10}: {rows[name]['agent_steps_per_s']:.3g} agent-steps/s "
              f"(compile {rows[name]['compile_s']:.1f} s)")
    slowdown = rows["playback"]["agent_steps_per_s"] / rows["generated"]["agent_steps_per_s"]
    print(f"slowdown of PPO training with generated mobility: {slowdown:.2f}x "
          f"(one DDIM sampling of {args.users} users per twin per 64-step episode)")
    result = {"benchmark": "generated_loop", "config": vars(args), "rows": rows,
              "slowdown": slowdown, "machine": machine_info()}
    write_json(result, os.path.join(RESULTS, "bench_generated_loop.json"))
    return result


if __name__ == "__main__":
    main()
