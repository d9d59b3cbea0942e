"""The environment API: gymnax-shaped pure functions, multi-agent by stacked arrays.

``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
``step`` auto-resets: when an episode ends, the returned ``obs``/``state`` start the next
episode (``reset_from(key, final_state, params)``, a plain reset unless the env carries
something over episodes) and ``info["final_observation"]`` holds the last observation of the
finished one. ``terminated``/``truncated`` are scalar bools per environment (per twin).
``params`` may be omitted (``env.default_params`` is used), also under ``jax.jit``.

Params: ``default_params`` (a property), ``make_params(**overrides)`` (validated) and
``check_params(params, rules)`` come from :class:`dtwin_jax._params.ParamsMixin`, the same
mixin as the mobility models'.

Actions and masks. One agent's action and mask per space kind (see
:mod:`dtwin_jax.envs.spaces`): ``Discrete(n)``: action ``[]`` int, mask ``[n]`` bool;
``MultiDiscrete(nvec)``: action ``[F]`` int, mask ``[F, max(nvec)]`` bool; ``Box`` and
``Simplex``: float action of the space's shape, no mask. Multi-agent envs stack agents on
axis 0 (``action [A, *space.shape]``, ``AgentObs.action_mask [A, *mask_shape]`` or ``None``).
:meth:`Environment.action_mask` gives the mask that belongs to a state.

- **At trace time** ``step`` checks the action's shape and dtype kind (integer for discrete
  spaces, float for continuous ones) and raises ``TypeError``/``ValueError`` naming
  ``action``, the expected shape and dtype (:meth:`Environment.check_action`). Floats for a
  discrete space are refused there, never truncated.
- **Illegal values** (without checked mode) follow one rule, :func:`legal_action`, which every
  env applies in ``step_env``: a discrete value that is out of range or masked is replaced by
  the first legal value of its factor (the lowest index that the mask allows); a continuous
  action has NaN replaced by the space's lower bound (0 where that is infinite) and is then
  clipped to ``[low, high]``; a simplex action has NaN and negative entries set to 0 and is
  renormalised (uniform when nothing is left).
- **Checked mode**: :class:`dtwin_jax.envs.wrappers.CheckedEnv` raises on out-of-range, NaN
  or masked actions and on invalid params at run time (``jax.experimental.checkify``).

Rewards. ``reward`` is ``[]`` for a single-agent env and ``[A]`` for a multi-agent one.
Cooperative multi-agent envs also return ``info["team_reward"]``: one scalar per twin, the
reward that a team learner (VDN, a centralised critic) maximises; per-agent rewards stay in
``reward`` for independent learners.

Subclasses implement ``reset_env``, ``step_env``, ``default_params``, ``check_params`` and the
spaces. Methods are plain functions (no ``jax.jit`` on methods): jit the outermost rollout or
training run. For batches of twins use :class:`dtwin_jax.envs.wrappers.VecEnv`, which resets
only when some twin's episode has ended instead of computing a reset every step.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dtwin_jax._params import ParamsMixin
from dtwin_jax.envs.spaces import Box, Discrete, MultiDiscrete, Simplex

Params = Any
State = Any
Obs = Any


@struct.dataclass
class AgentObs:
    """Observation of a multi-agent env, agents stacked on the leading axis.

    Fields:
        features: ``[A, D]`` float32, each agent's observation vector.
        action_mask: ``[A, *mask_shape]`` bool, the legal values of each agent's action
            (``[A, n]`` for ``Discrete``, ``[A, F, n_max]`` for ``MultiDiscrete``), or
            ``None`` for continuous action spaces.
        agent_mask: ``[A]`` bool, which agents exist now (padding is False).
    """

    features: chex.Array
    action_mask: chex.Array | None
    agent_mask: chex.Array


def tree_select(pred: chex.Array, on_true: Any, on_false: Any) -> Any:
    """``where(pred, a, b)`` leaf by leaf over two pytrees of one structure (scalar ``pred``)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def legal_action(space, action: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The documented rule for illegal actions (module docstring), for one agent or stacked
    agents: ``action [..., *space.shape]`` with ``mask [..., *space.mask_shape]`` (or None).

    Discrete spaces: out-of-range or masked values become the first legal value (the first
    value of the space when the mask allows none). Box: NaN -> ``low`` (0 where ``low`` is
    infinite), then clipped. Simplex: NaN and negatives -> 0, renormalised (uniform if all 0).
    """
    if isinstance(space, (Discrete, MultiDiscrete)):
        n = space.n if isinstance(space, Discrete) else jnp.asarray(space.nvec)
        n_max = space.n if isinstance(space, Discrete) else space.n_max
        valid = jnp.arange(n_max) < jnp.expand_dims(n, -1)  # [n] or [F, n_max]
        mask = jnp.broadcast_to(valid if mask is None else mask & valid, (*action.shape, n_max))
        mask = mask | ~mask.any(-1, keepdims=True) & (jnp.arange(n_max) == 0)
        inside = (action >= 0) & (action < n)
        idx = jnp.clip(action, 0, n_max - 1)
        legal = inside & jnp.take_along_axis(mask, idx[..., None], axis=-1)[..., 0]
        return jnp.where(legal, action, jnp.argmax(mask, axis=-1).astype(action.dtype))
    if isinstance(space, Box):
        low = jnp.asarray(space.low, action.dtype)
        high = jnp.asarray(space.high, action.dtype)
        fill = jnp.where(jnp.isfinite(low), low, 0.0).astype(action.dtype)
        return jnp.clip(jnp.where(jnp.isnan(action), fill, action), low, high)
    if isinstance(space, Simplex):
        x = jnp.where(jnp.isnan(action) | (action < 0), 0.0, action)
        total = x.sum(-1, keepdims=True)
        uniform = jnp.full_like(x, 1.0 / space.n)
        return jnp.where(total > 0, x / jnp.where(total > 0, total, 1.0), uniform)
    raise TypeError(f"unsupported action space {type(space).__name__}")


class Environment(ParamsMixin):
    """A single twin: pure ``reset``/``step`` over explicit state and params."""

    #: number of agents on the leading axis of obs/reward (1 for a single-agent env)
    num_agents: int = 1

    @property
    def name(self) -> str:
        """Display name of the env (default: the class name)."""
        return type(self).__name__

    @abstractmethod
    def reset_env(self, key: chex.PRNGKey, params: Params) -> tuple[Obs, State]:
        """Start an episode without defaulting params."""

    @abstractmethod
    def step_env(
        self, key: chex.PRNGKey, state: State, action: chex.Array, params: Params
    ) -> tuple[Obs, State, chex.Array, chex.Array, chex.Array, dict]:
        """One step without auto-reset; same returns as :meth:`step` minus ``final_observation``.

        Applies :func:`legal_action` to ``action`` (the rule for illegal actions)."""

    def reset_from(self, key: chex.PRNGKey, state: State, params: Params) -> tuple[Obs, State]:
        """Start the next episode after one that ended in ``state``: auto-resets call this.

        Defaults to :meth:`reset_env`; envs override it to carry something over episodes
        (for example a mobility model's trajectory bank).
        """
        return self.reset_env(key, params)

    @abstractmethod
    def observation_space(self, params: Params):
        """Space of one agent's observation features."""

    @abstractmethod
    def action_space(self, params: Params):
        """Space of one agent's action (static: it may not depend on traced params)."""

    def action_mask(self, state: State, params: Params) -> jax.Array | None:
        """Mask of the legal actions in ``state`` (the one its observation carries),
        ``[A, *mask_shape]`` for multi-agent envs; ``None`` (the default) when every value of
        the space is legal."""
        del state, params
        return None

    def action_shape(self, params: Params) -> tuple[int, ...]:
        """Shape of the whole ``action`` argument of :meth:`step`: ``[A, *space.shape]`` for a
        multi-agent env, ``space.shape`` otherwise."""
        shape = tuple(self.action_space(params).shape)
        return (self.num_agents, *shape) if isinstance(self, MultiAgentEnv) else shape

    def check_action(self, action, params: Params) -> jax.Array:
        """``action`` as an array after checking its shape and dtype kind (static: works at
        trace time); raises ``ValueError``/``TypeError`` naming ``action``."""
        space = self.action_space(params)
        shape = self.action_shape(params)
        want_int = isinstance(space, (Discrete, MultiDiscrete))
        want = f"shape {shape} and dtype {np.dtype(space.dtype).name}"
        try:
            action = jnp.asarray(action)
        except TypeError as err:
            raise TypeError(f"action must be an array of {want}") from err
        kind = np.dtype(action.dtype).kind
        if (want_int and kind not in "iu") or (not want_int and kind != "f"):
            raise TypeError(f"action has dtype {action.dtype}; expected {want}")
        if action.shape != shape:
            raise ValueError(f"action has shape {action.shape}; expected {want}")
        return action

    def reset(self, key: chex.PRNGKey, params: Params | None = None) -> tuple[Obs, State]:
        """Start an episode. ``params`` defaults to :attr:`default_params`."""
        return self.reset_env(key, self.default_params if params is None else params)

    def step(
        self, key: chex.PRNGKey, state: State, action: chex.Array, params: Params | None = None
    ) -> tuple[Obs, State, chex.Array, chex.Array, chex.Array, dict]:
        """Advance one step and auto-reset an episode that ended (see module docstring)."""
        params = self.default_params if params is None else params
        action = self.check_action(action, params)
        key_step, key_reset = jax.random.split(key)
        obs, state_next, reward, terminated, truncated, info = self.step_env(
            key_step, state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        obs_reset, state_reset = self.reset_from(key_reset, state_next, params)
        info = dict(info, final_observation=obs)
        obs = tree_select(done, obs_reset, obs)
        state_next = tree_select(done, state_reset, state_next)
        return obs, state_next, reward, terminated, truncated, info


class MultiAgentEnv(Environment):
    """Agents stacked on a leading axis: ``obs`` is :class:`AgentObs`, ``reward`` is ``[A]``.

    ``info["agent_mask"]`` (``[A]`` bool) says which agents exist after the step. Every agent
    shares one action space (:meth:`action_space`), which may be any of the four kinds;
    ``action`` is ``[A, *space.shape]``. Cooperative envs add ``info["team_reward"]`` (scalar).
    """

    num_agents: int
