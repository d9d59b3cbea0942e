"""Baseline policies of ``slicing-v0`` and the exhaustive search for the best fixed split.

A policy is ``policy(key, obs, state, params) -> action`` (int32 scalar) for ONE twin
(``jax.vmap`` it over twins).

- :func:`equal_split_policy`: hard slicing, every slice a third of the bandwidth; chosen when
  the units do not divide by 3: ``floor(N / 3)`` each, the one or two units left over go to
  VoLTE, then video (10 units -> (4, 3, 3)).
- :func:`random_policy`: a uniformly random split every decision.
- :func:`fixed_split_policy`: always the same split, e.g. the one :func:`best_fixed_split`
  finds by trying every action on the same twins and draws (common random numbers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import _checks
from dtwin_jax.envs.slicing.env import SlicingEnv
from dtwin_jax.envs.slicing.types import SlicingParams

METRICS = ("utility", "reward")


def equal_split(num_units: int) -> tuple[int, int, int]:
    """The hard-slicing split (module docstring) of ``num_units`` units."""
    q, r = divmod(num_units, 3)
    return (q + (r > 0), q + (r > 1), q)


def fixed_split_policy(env: SlicingEnv, split):
    """Always ``split = (volte, video, urllc)`` in units (checked now)."""
    action = jnp.int32(env.action_from_split(split))

    def policy(key, obs, state, params):
        return action

    return policy


def equal_split_policy(env: SlicingEnv):
    """Hard slicing: :func:`equal_split` every decision."""
    return fixed_split_policy(env, equal_split(env.num_units))


def random_policy(env: SlicingEnv):
    """A uniformly random action every decision."""
    space = env.action_space()

    def policy(key, obs, state, params):
        return space.sample(key)

    return policy


def evaluate_actions(env: SlicingEnv, params: SlicingParams, key: jax.Array,
                     actions, num_twins: int = 4, num_decisions: int = 4) -> dict:
    """Mean utility and reward of each fixed action over the same twins and draws.

    Every action runs ``num_twins`` twins (vmapped) for ``num_decisions`` decisions from the
    same reset and step keys. Actions run one after another (``lax.map``) to bound memory.
    Jit-compatible; returns ``{"utility": [K] f32, "reward": [K] f32}`` for ``actions [K]``.
    """
    _checks.check_int("num_twins", num_twins, lo=1)
    _checks.check_int("num_decisions", num_decisions, lo=1)
    k_reset, k_steps = jax.random.split(key)
    reset_keys = jax.random.split(k_reset, num_twins)
    step_keys = jax.random.split(k_steps, (num_decisions, num_twins))

    def run(action):
        _, state = jax.vmap(env.reset, (0, None))(reset_keys, params)

        def body(state, keys):
            a = jnp.full((num_twins,), action, jnp.int32)
            _, state, reward, _, _, info = jax.vmap(env.step, (0, 0, 0, None))(
                keys, state, a, params)
            return state, (info["utility"], reward)

        _, (util, reward) = jax.lax.scan(body, state, step_keys)
        return jnp.mean(util), jnp.mean(reward)

    util, reward = jax.lax.map(run, jnp.asarray(actions, jnp.int32))
    return {"utility": util, "reward": reward}


def best_fixed_split(env: SlicingEnv, params: SlicingParams, key: jax.Array,
                     num_twins: int = 4, num_decisions: int = 4,
                     metric: str = "utility") -> dict:
    """Exhaustive search over every action for the best fixed split by mean ``metric``
    ("utility" or "reward"; ties go to the lower action index).

    Returns ``{"action": int, "split": (volte, video, urllc), "utility": [K], "reward": [K]}``
    (NumPy arrays; runs :func:`evaluate_actions` under ``jax.jit``).
    """
    metric = _checks.check_choice("metric", metric, METRICS)
    evaluate = jax.jit(evaluate_actions, static_argnums=(0, 4, 5))
    scores = evaluate(env, params, key, jnp.arange(env.num_actions), num_twins, num_decisions)
    scores = {k: np.asarray(v) for k, v in scores.items()}
    action = int(np.argmax(scores[metric]))
    return {"action": action, "split": env.split_from_action(action), **scores}
