"""Train Stable-Baselines3 PPO on a dtwin_jax twin through the Gymnasium adapter.

    pip install "dtwin_jax[gym]" stable-baselines3
    python examples/sb3_ppo.py                              # slicing-v0, 4096 steps
    python examples/sb3_ppo.py --env association-v0 --others max_sinr --timesteps 8192
    python examples/sb3_ppo.py --tiny                       # small twin, 256 steps (tests)

The env is ``gymnasium.make("dtwin_jax/<id>")``: NumPy in and out, the twin's reset/step
jitted inside. Multi-agent twins are seen by one agent (``--agent``) while the others follow
``--others`` (a random legal action, or a baseline such as ``max_sinr``). PPO's ``MlpPolicy``
ignores action masks; illegal choices are mapped to the first legal one by the env's rule
(:func:`dtwin_jax.envs.base.legal_action`); sb3-contrib's ``MaskablePPO`` can use the env's
``action_masks()`` instead. SB3 steps its own ``DummyVecEnv`` of single envs; code written
for ``gymnasium.vector`` (CleanRL style) gets one jitted call for all sub-envs from
``gymnasium.make_vec("dtwin_jax/<id>", num_envs=N)``.

Prints and returns the mean episode return of the trained (deterministic) policy and of
uniformly random legal actions on the same evaluation seeds.
"""

from __future__ import annotations

import argparse

import gymnasium
import numpy as np
from stable_baselines3 import PPO

import dtwin_jax  # noqa: F401  (registers the dtwin_jax/<id> Gymnasium ids)

#: env id -> (constructor kwargs, params overrides) of the ``--tiny`` twins
TINY = {
    "slicing-v0": (dict(num_users=10, num_slots=20), dict(episode_length=8)),
    "association-v0": (
        dict(num_bs=4, num_macro=1, max_users=6, num_candidates=3, mobility="waypoint",
             area_m=200.0, shadow_cell_m=20.0),
        dict(num_users=5, episode_length=8),
    ),
    "dnt-sync-v0": (dict(num_users=4, num_rbs=4, predictor="persistence"),
                    dict(episode_length=8)),
}


def episode_return(env: gymnasium.Env, act, seed: int) -> float:
    """Return of one episode from ``reset(seed=seed)``; ``act(obs, info) -> action``."""
    obs, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs, info))
        total += reward
        done = terminated or truncated
    return total


def random_legal(env: gymnasium.Env):
    """``act(obs, info)``: a uniformly random legal action (the mask when there is one)."""
    def act(obs, info):
        mask = info.get("action_mask")
        if mask is not None and isinstance(env.action_space, gymnasium.spaces.Discrete):
            return env.action_space.sample(mask=mask.astype(np.int8))
        return env.action_space.sample()

    return act


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="slicing-v0", choices=sorted(TINY))
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--agent", type=int, default=0, help="controlled agent (multi-agent)")
    parser.add_argument("--others", default="random", help="policy of the other agents")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="small twin, 256 steps")
    args = parser.parse_args(argv)

    kwargs, overrides = TINY[args.env] if args.tiny else ({}, {})
    timesteps = 256 if args.tiny else args.timesteps
    extra = {} if args.env == "slicing-v0" else dict(agent=args.agent, others=args.others)
    env = gymnasium.make(f"dtwin_jax/{args.env}", params=overrides, **extra, **kwargs)

    n_steps = min(2048, max(64, timesteps // 4))
    model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=64, seed=args.seed, verbose=0)
    model.learn(total_timesteps=timesteps)

    seeds = [10_000 + args.seed * 100 + i for i in range(args.episodes)]  # not trained on
    trained = [episode_return(env, lambda obs, info: model.predict(obs, deterministic=True)[0],
                              s) for s in seeds]
    env.action_space.seed(args.seed)
    rand = [episode_return(env, random_legal(env), s) for s in seeds]
    result = {"env": args.env, "timesteps": timesteps,
              "trained_return": float(np.mean(trained)), "random_return": float(np.mean(rand))}
    print(f"{args.env}: PPO {timesteps} steps -> mean return {result['trained_return']:.3f} "
          f"(random legal actions {result['random_return']:.3f}) over {args.episodes} "
          f"episodes")
    env.close()
    return result


if __name__ == "__main__":
    main()
