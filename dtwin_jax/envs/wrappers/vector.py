"""``VecEnv``: a batch of twins stepped together, each with its own params.

The twin axis is the leading axis of every array. Episodes that end are reset inside the
step, but the reset is computed only on steps where at least one twin's episode ended
(``lax.cond`` on :func:`any_in_batch` of the done flags), not on every step as a per-twin
``select`` would.

Under an outer ``jax.vmap`` (seeds: ``jax.vmap(train)(keys)``) an ordinary predicate
``done.any()`` becomes batched, and a ``lax.cond`` with a batched predicate is turned into a
``select`` of both branches: the reset would then run on every step. :func:`any_in_batch`
has its own batching rule that reduces over the vmapped axes too, so the predicate stays
unbatched and the reset runs only on steps where some twin of some seed ended. The branch
picks reset or current per twin with ``where(done, ...)``, so a predicate that is True for
another seed's sake changes no value.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from dtwin_jax._checks import check_int
from dtwin_jax.envs.base import Environment, Params


@jax.custom_batching.custom_vmap
def any_in_batch(x: jax.Array) -> jax.Array:
    """``jnp.any(x)``, a scalar bool that stays unbatched under ``jax.vmap``.

    Under ``vmap`` it is the any over the mapped axes as well, the same for every batch
    member: use it only to *gate* work whose result is masked per member anyway (a
    ``lax.cond`` whose true branch equals the false branch where nothing needs doing).
    """
    return jnp.any(x)


@any_in_batch.def_vmap
def _any_in_batch_vmap(axis_size, in_batched, x):
    del axis_size, in_batched
    return jnp.any(x), False


class VecEnv:
    """``num_envs`` copies of ``env``; params carry a leading ``[num_envs]`` axis.

    ``reset_batch``: when set (and below ``num_envs``), :meth:`reset` creates the twins
    ``reset_batch`` at a time (``lax.map`` over chunks of a ``vmap``), so the temporaries of a
    twin's creation are held for one chunk, not for all twins at once. The random draws are
    the same; float results agree to rounding (XLA may order a chunk's arithmetic otherwise).
    A new association twin draws its shadowing tile by FFT, with temporaries several times its
    state's bytes: at large twin counts that, not the step, decides how many twins fit.
    """

    def __init__(self, env: Environment, num_envs: int, reset_batch: int | None = None):
        self.env = env
        self.num_envs = check_int("num_envs", num_envs, lo=1)
        self.reset_batch = None if reset_batch is None else check_int(
            "reset_batch", reset_batch, lo=1)

    def batch_params(self, params: Params | None = None) -> Params:
        """Broadcast one params struct (default: the env's) to a batch of identical twins."""
        params = self.env.default_params if params is None else params
        return jax.tree.map(
            lambda x: jnp.broadcast_to(jnp.asarray(x), (self.num_envs, *jnp.shape(x))), params
        )

    def reset(self, key: chex.PRNGKey, params: Params):
        """Reset every twin. Returns batched ``(obs, state)``."""
        keys = jax.random.split(key, self.num_envs)
        if self.reset_batch is None or self.reset_batch >= self.num_envs:
            return jax.vmap(self.env.reset_env)(keys, params)
        return jax.lax.map(lambda kp: self.env.reset_env(*kp), (keys, params),
                           batch_size=self.reset_batch)

    def check_action(self, action, params: Params) -> jax.Array:
        """``action [num_envs, ...]`` as an array after the env's trace-time check of one
        twin's action (shape and dtype kind); raises naming ``action``."""
        action = jnp.asarray(action)
        if action.ndim == 0 or action.shape[0] != self.num_envs:
            raise ValueError(f"action has shape {action.shape}; expected a leading axis of "
                             f"num_envs={self.num_envs}")
        self.env.check_action(action[0], jax.tree.map(lambda p: p[0], params))
        return action

    def step(self, key: chex.PRNGKey, state, action: chex.Array, params: Params):
        """Step every twin; twins whose episode ended restart (see module docstring).

        Returns ``(obs, state, reward, terminated, truncated, info)`` with a leading
        ``[num_envs]`` axis; ``info["final_observation"]`` is the observation before any reset.
        """
        action = self.check_action(action, params)
        key_step, key_reset = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = jax.vmap(self.env.step_env)(
            jax.random.split(key_step, self.num_envs), state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        info = dict(info, final_observation=obs)

        def reset_done(carry):
            obs_now, state_now = carry
            keys = jax.random.split(key_reset, self.num_envs)
            obs_new, state_new = jax.vmap(self.env.reset_from)(keys, state_now, params)

            def pick(new, old):
                mask = done.reshape(done.shape + (1,) * (new.ndim - 1))
                return jnp.where(mask, new, old)

            return jax.tree.map(pick, obs_new, obs_now), jax.tree.map(pick, state_new, state_now)

        obs, state = jax.lax.cond(any_in_batch(done), reset_done, lambda carry: carry,
                                  (obs, state))
        return obs, state, reward, terminated, truncated, info
