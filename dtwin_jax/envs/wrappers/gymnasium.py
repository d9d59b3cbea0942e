"""Gymnasium adapters: every dtwin_jax env as a ``gymnasium.Env`` and a vectorised
``gymnasium.vector.VectorEnv`` (optional extra: ``pip install "dtwin_jax[gym]"``).

After ``import dtwin_jax`` (with Gymnasium installed) every registered env is available as
``gymnasium.make("dtwin_jax/<id>", **constructor_kwargs)`` and, vectorised by our jitted
``vmap``, as ``gymnasium.make_vec("dtwin_jax/<id>", num_envs=N, **constructor_kwargs)``.
``"dtwin_jax:dtwin_jax/<id>"`` also works without importing dtwin_jax first.
:func:`register_envs` registers envs added to the registry later.

Data in and out are NumPy; ``reset``/``step`` run jitted functions compiled once per adapter
instance (the first ``reset`` and ``step`` compile). Keyword arguments of both adapters:

``agent`` (int, default 0)
    Multi-agent envs are seen by ONE controlled agent: its ``features`` row is the
    observation, its entry of ``reward`` the reward. Single-agent envs accept only 0.
``others`` (default ``"random"``)
    How the other agents act: ``"random"`` (a uniformly random legal action per agent,
    every env), the name of a baseline of the env's ``policies`` module (``"max_sinr"`` for
    ``association-v0``, the classical rule real users follow; ``"nearest_bs"`` for
    ``dnt-sync-v0``), or a callable ``policy(key, obs, state, params) -> action [A, ...]``
    (the convention of those modules); the controlled agent's entry is replaced. Random is
    the default because it exists for every env; pass a baseline to train one agent against
    a classical population.
``reward`` (``"own"`` or ``"team"``)
    ``"team"`` returns ``info["team_reward"]`` of cooperative envs (others raise
    ``ValueError`` naming ``reward``).
``params``
    ``None`` (the env's defaults), a dict of overrides (validated by ``make_params``) or a
    params struct (validated by ``check_params``).
other keyword arguments
    the env's constructor arguments, when ``env`` is a registered id.

Spaces: ``Discrete`` -> ``gymnasium.spaces.Discrete`` (``MultiDiscrete`` when it has a
shape), ``MultiDiscrete`` -> ``MultiDiscrete``, ``Box`` -> ``Box`` (float32), ``Simplex(n)``
-> ``Box(0, 1, (n,))``: a share vector need not sum to 1, the env renormalises it by
:func:`dtwin_jax.envs.base.legal_action` (negatives and NaN count as 0; all zero -> uniform).
Illegal discrete values follow the same rule (the first legal value). The legal actions of
the step are ``info["action_mask"]`` (bool; ``[n]`` for ``Discrete``, ``[F, n_max]`` for
``MultiDiscrete``, absent for continuous spaces); :meth:`GymnasiumEnv.action_masks` gives
the flat form of sb3-contrib's ``MaskablePPO``.

Info: the env's ``info`` fields as NumPy arrays (per-agent fields keep their agent axis),
``action_mask`` and, for multi-agent envs, ``agent_active`` (whether the controlled agent
exists now; while it does not, its action is ignored and its reward is 0).

Episodes end on the env's ``terminated``/``truncated``; the single env then refuses ``step``
until ``reset`` (the env's own auto-reset is never used). ``reset(seed=s)`` starts a fresh
twin from ``jax.random.PRNGKey(s)`` (``reset_env``); ``reset()`` without a seed continues the
twin with its next episode (``reset_from``, what the env's auto-reset does: cheap, e.g.
association keeps its shadowing tile, re-placed). Options of ``reset`` are ignored.

Vector env: autoreset mode ``AutoresetMode.SAME_STEP`` (as the env's own auto-reset): a
sub-env whose episode ends in a step is reset inside that same jitted call, the returned
observation starts its next episode, and ``info["final_obs"]`` (object array, with the mask
``info["_final_obs"]``) and ``info["final_info"]`` hold the finished episode's last
observation and info. Sub-env ``i`` of ``reset(seed=s)`` is the single env reset with seed
``s + i`` (a list of seeds gives one per sub-env), and stepping it is the single env's step
followed by ``reset()`` when the episode ends: the same keys, the same numbers. Rewards are
float64 ``[N]``, terminations and truncations bool ``[N]``, observations float32 ``[N, D]``.
Every sub-env has the same params.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces as gym_spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dtwin_jax import _checks
from dtwin_jax.envs import spaces as dt_spaces
from dtwin_jax.envs.base import Environment, MultiAgentEnv
from dtwin_jax.envs.registry import make, registered_envs
from dtwin_jax.envs.wrappers.vector import any_in_batch

#: Gymnasium namespace of the registered ids (``dtwin_jax/<id>``)
NAMESPACE = "dtwin_jax"
#: accepted values of the ``reward`` argument
REWARDS = ("own", "team")
#: largest seed accepted by ``reset`` (seeds are ``jax.random.PRNGKey`` seeds)
MAX_SEED = 2**32 - 1


# ---------------------------------------------------------------------- shared helpers
def to_gymnasium_space(space) -> gym_spaces.Space:
    """The Gymnasium space of a dtwin_jax space (module docstring: ``Simplex`` -> ``Box``)."""
    if isinstance(space, dt_spaces.Discrete):
        if space.shape == ():
            return gym_spaces.Discrete(space.n)
        return gym_spaces.MultiDiscrete(np.full(space.shape, space.n, np.int64))
    if isinstance(space, dt_spaces.MultiDiscrete):
        return gym_spaces.MultiDiscrete(np.asarray(space.nvec, np.int64))
    if isinstance(space, dt_spaces.Box):
        low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape).copy()
        high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape).copy()
        return gym_spaces.Box(low, high, space.shape, np.float32)
    if isinstance(space, dt_spaces.Simplex):
        return gym_spaces.Box(0.0, 1.0, space.shape, np.float32)
    raise TypeError(f"space of type {type(space).__name__} has no Gymnasium equivalent")


def resolve_env(env: str | Environment, env_kwargs: dict) -> Environment:
    """``env`` itself, or the registered env ``env`` built with ``env_kwargs``."""
    if isinstance(env, Environment):
        if env_kwargs:
            raise TypeError(
                f"constructor arguments {sorted(env_kwargs)} are accepted only with an env id; "
                f"env is already an instance of {type(env).__name__}"
            )
        return env
    if isinstance(env, str):
        return make(env, **env_kwargs)
    raise TypeError(f"env must be a registered id (one of {registered_envs()}) or an "
                    f"Environment, got {type(env).__name__}")


def resolve_params(env: Environment, params) -> Any:
    """``env.default_params`` (None), ``env.make_params(**params)`` (dict), or the given
    params struct after ``env.check_params``."""
    if params is None:
        return env.default_params
    if isinstance(params, dict):
        return env.make_params(**params)
    env.check_params(params)
    return params


def check_seed(name: str, seed) -> int:
    """``seed`` as an int in ``[0, MAX_SEED]`` (``ValueError``/``TypeError`` naming it)."""
    return _checks.check_int(name, seed, lo=0, hi=MAX_SEED)


def as_action(space, action, batch: tuple[int, ...] = (), name: str = "action") -> np.ndarray:
    """``action`` as an int32 (discrete spaces) or float32 (continuous) array of shape
    ``[*batch, *space.shape]``; raises naming ``name`` for a wrong shape or dtype kind
    (floats are refused for discrete spaces, never truncated)."""
    discrete = isinstance(space, dt_spaces.MASKED_SPACES)
    shape = (*batch, *space.shape)
    want = f"shape {shape} and {'integer' if discrete else 'float'} dtype"
    action = np.asarray(action)
    kinds = "iu" if discrete else "fiu"
    if action.dtype.kind not in kinds:
        raise TypeError(f"{name} has dtype {action.dtype}; expected {want}")
    if action.shape != shape:
        raise ValueError(f"{name} has shape {action.shape}; expected {want}")
    return action.astype(np.int32 if discrete else np.float32)


def random_policy(env: MultiAgentEnv) -> Callable:
    """``policy(key, obs, state, params) -> action [A, ...]``: a uniformly random legal action
    per agent (the space's masked sample; a continuous space's plain sample)."""
    space = env.action_space(env.default_params)

    def policy(key, obs, state, params):
        del state, params
        keys = jax.random.split(key, env.num_agents)
        if obs.action_mask is None:
            return jax.vmap(space.sample)(keys)
        return jax.vmap(space.sample)(keys, obs.action_mask)

    return policy


def resolve_policy(env: MultiAgentEnv, others: str | Callable) -> Callable:
    """The policy of the agents that the adapter does not control (module docstring)."""
    if callable(others):
        return others
    if not isinstance(others, str):
        raise TypeError(f"others must be 'random', a baseline name or a callable, "
                        f"got {type(others).__name__}")
    if others == "random":
        return random_policy(env)
    package = type(env).__module__.rpartition(".")[0]
    try:
        module = importlib.import_module(f"{package}.policies")
    except ModuleNotFoundError:
        module = None
    names = sorted(n[: -len("_policy")] for n in dir(module) if n.endswith("_policy"))
    if others not in names:
        raise ValueError(f"others={others!r} is not a policy of {env.name}; allowed: "
                         f"'random', {names} or a callable policy(key, obs, state, params)")
    return getattr(module, f"{others}_policy")(env)


# ---------------------------------------------------------------------- pure core
class AgentView:
    """One agent's view of a dtwin_jax env as pure, jittable functions (the core of both
    adapters). The carry is ``(env_state, env_obs)``; a view observation is
    ``(features [D] float32, extras)`` with ``extras`` holding ``action_mask`` (discrete
    spaces) and ``agent_active`` (multi-agent envs). Every function takes the key and
    returns the next one, so a sub-env's key chain equals the single env's.
    """

    def __init__(self, env: Environment, agent: int = 0, others: str | Callable = "random",
                 reward: str = "own"):
        self.env = env
        self.multi = isinstance(env, MultiAgentEnv)
        self.agent = _checks.check_int("agent", agent, lo=0,
                                       hi=env.num_agents - 1 if self.multi else 0)
        self.reward = _checks.check_choice("reward", reward, REWARDS)
        params = env.default_params
        self.space = env.action_space(params)
        self.obs_space = env.observation_space(params)
        if self.multi:
            self.others = resolve_policy(env, others)
        elif others != "random":
            raise ValueError(f"others={others!r} needs a multi-agent env; {env.name} has one "
                             f"agent")
        if self.reward == "team" and "team_reward" not in self._info_keys(params):
            raise ValueError(f"reward='team' needs info['team_reward'], which {env.name} "
                             f"does not report; allowed: 'own'")

    def _info_keys(self, params) -> list[str]:
        """Keys of the env's step ``info`` (traced, nothing computed)."""
        def one_step(key):
            obs, state = self.env.reset_env(key, params)
            action = jnp.zeros(self.env.action_shape(params), self.space.dtype)
            return self.env.step_env(key, state, action, params)[-1]

        return sorted(jax.eval_shape(one_step, jax.random.PRNGKey(0)))

    def _observe(self, obs, state, params):
        """The view observation of env ``obs``/``state``."""
        extras = {}
        if self.multi:
            features = obs.features[self.agent]
            mask = None if obs.action_mask is None else obs.action_mask[self.agent]
            extras["agent_active"] = obs.agent_mask[self.agent]
        else:
            features = obs
            mask = self.env.action_mask(state, params)
        if isinstance(self.space, dt_spaces.MASKED_SPACES):
            if mask is None:
                mask = self._valid_values()
            extras["action_mask"] = mask
        return features.astype(jnp.float32), extras

    def _valid_values(self) -> jax.Array:
        """The all-legal mask of the (discrete) action space."""
        if isinstance(self.space, dt_spaces.MultiDiscrete):
            return jnp.asarray(self.space.valid_values())
        return jnp.ones(self.space.mask_shape, bool)

    def reset_fresh(self, key, params):
        """A fresh twin (``reset_env``): ``(key, view_obs, carry)``."""
        key, sub = jax.random.split(key)
        obs, state = self.env.reset_env(sub, params)
        return key, self._observe(obs, state, params), (state, obs)

    def reset_next(self, key, carry, params):
        """The twin's next episode after ``carry`` (``reset_from``): ``(key, view_obs,
        carry)``."""
        key, sub = jax.random.split(key)
        obs, state = self.env.reset_from(sub, carry[0], params)
        return key, self._observe(obs, state, params), (state, obs)

    def step(self, key, carry, action, params):
        """One step without auto-reset: ``(key, view_obs, carry, reward, terminated,
        truncated, info)``; ``action`` is the controlled agent's."""
        key, sub = jax.random.split(key)
        state, obs = carry
        if self.multi:
            k_others, sub = jax.random.split(sub)
            full = self.others(k_others, obs, state, params)
            full = jnp.asarray(full, self.space.dtype).at[self.agent].set(action)
        else:
            full = action
        full = self.env.check_action(full, params)
        obs, state, reward, terminated, truncated, info = self.env.step_env(sub, state, full,
                                                                            params)
        if self.reward == "team":
            reward = info["team_reward"]
        elif self.multi:
            reward = reward[self.agent]
        return (key, self._observe(obs, state, params), (state, obs), reward, terminated,
                truncated, dict(info))


def _to_numpy(tree):
    """Fresh, writable NumPy copies of every leaf (one device transfer)."""
    return jax.tree.map(np.array, jax.device_get(tree))


def flat_action_mask(space, mask: np.ndarray) -> np.ndarray:
    """``mask`` in sb3-contrib's flat form: ``[n]`` for ``Discrete``, the concatenated legal
    values of each factor (``sum(nvec)``) for ``MultiDiscrete``."""
    if isinstance(space, dt_spaces.MultiDiscrete):
        return np.concatenate([mask[f, :n] for f, n in enumerate(space.nvec)])
    return mask.reshape(-1)


# ---------------------------------------------------------------------- single env
class GymnasiumEnv(gymnasium.Env):
    """A dtwin_jax env as a ``gymnasium.Env`` (module docstring: arguments, spaces, seeds).

    Args:
        env: a registered id (built with ``env_kwargs``) or an ``Environment``.
        agent, others, reward, params: see the module docstring.
        render_mode: must be None (no rendering).
    """

    metadata = {"render_modes": []}

    def __init__(self, env: str | Environment, *, agent: int = 0,
                 others: str | Callable = "random", reward: str = "own", params=None,
                 render_mode: str | None = None, **env_kwargs):
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None")
        self.render_mode = None
        self.dtwin_env = resolve_env(env, env_kwargs)
        self.view = AgentView(self.dtwin_env, agent, others, reward)
        self.params = resolve_params(self.dtwin_env, params)
        self.action_space = to_gymnasium_space(self.view.space)
        self.observation_space = to_gymnasium_space(self.view.obs_space)
        self._reset_fresh = jax.jit(self.view.reset_fresh)
        self._reset_next = jax.jit(self.view.reset_next)
        self._step = jax.jit(self.view.step)
        self._key = None
        self._carry = None
        self._mask = None
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Fresh twin with a seed, else the twin's next episode (module docstring).
        ``options`` are ignored. Returns ``(obs, info)``."""
        seed = None if seed is None else check_seed("seed", seed)
        super().reset(seed=seed)
        if seed is not None or self._carry is None:
            if seed is None:
                seed = int(self.np_random.integers(MAX_SEED + 1))
            key = jax.random.PRNGKey(seed)
            self._key, view_obs, self._carry = self._reset_fresh(key, self.params)
        else:
            self._key, view_obs, self._carry = self._reset_next(self._key, self._carry,
                                                                self.params)
        self._done = False
        obs, info = self._host_view(view_obs)
        return obs, info

    def step(self, action):
        """Step with the controlled agent's ``action`` (NumPy or a Python number).
        Returns ``(obs, reward, terminated, truncated, info)``."""
        if self._carry is None or self._done:
            raise RuntimeError("step() needs a running episode: call reset() first (after "
                               "terminated or truncated, reset() starts the next episode)")
        action = as_action(self.view.space, action)
        out = self._step(self._key, self._carry, action, self.params)
        self._key, view_obs, self._carry = out[:3]
        reward, terminated, truncated, env_info = _to_numpy(out[3:])
        obs, info = self._host_view(view_obs)
        info.update(env_info)
        self._done = bool(terminated) or bool(truncated)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def _host_view(self, view_obs):
        """NumPy ``(obs, info)`` of a view observation; remembers the action mask."""
        features, extras = _to_numpy(view_obs)
        self._mask = extras.get("action_mask")
        return features, extras

    def action_masks(self) -> np.ndarray:
        """The legal actions now, flat (:func:`flat_action_mask`): sb3-contrib's
        ``MaskablePPO`` calls this. Raises for continuous spaces and before ``reset``."""
        if self._mask is None:
            raise RuntimeError("action_masks() needs a discrete action space and a reset()")
        return flat_action_mask(self.view.space, self._mask)


# ---------------------------------------------------------------------- vector env
class GymnasiumVectorEnv(VectorEnv):
    """``num_envs`` copies of a dtwin_jax env as a ``gymnasium.vector.VectorEnv``, stepped by
    one jitted ``vmap`` (autoreset ``SAME_STEP``; module docstring).

    Args:
        env: a registered id (built with ``env_kwargs``) or an ``Environment``.
        num_envs: number of sub-envs N.
        agent, others, reward, params: as :class:`GymnasiumEnv` (shared by all sub-envs).
        render_mode: must be None.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: str | Environment, num_envs: int, *, agent: int = 0,
                 others: str | Callable = "random", reward: str = "own", params=None,
                 render_mode: str | None = None, **env_kwargs):
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None")
        self.render_mode = None
        self.num_envs = _checks.check_int("num_envs", num_envs, lo=1)
        self.dtwin_env = resolve_env(env, env_kwargs)
        self.view = AgentView(self.dtwin_env, agent, others, reward)
        self.params = resolve_params(self.dtwin_env, params)
        self.single_action_space = to_gymnasium_space(self.view.space)
        self.single_observation_space = to_gymnasium_space(self.view.obs_space)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._reset_fresh = jax.jit(jax.vmap(self.view.reset_fresh, (0, None)))
        self._reset_next = jax.jit(jax.vmap(self.view.reset_next, (0, 0, None)))
        self._step = jax.jit(self.step_batch)
        self._keys = None
        self._carry = None

    def step_batch(self, keys, carry, action, params):
        """Pure batched step with same-step resets: ``(keys, view_obs, carry, reward,
        terminated, truncated, info, final_view_obs)``. The reset is computed only on steps
        where some sub-env's episode ended (``lax.cond`` on :func:`any_in_batch`)."""
        keys, view_obs, carry, reward, terminated, truncated, info = jax.vmap(
            self.view.step, (0, 0, 0, None))(keys, carry, action, params)
        done = terminated | truncated

        def reset_done(args):
            keys_now, obs_now, carry_now = args
            new = jax.vmap(self.view.reset_next, (0, 0, None))(keys_now, carry_now, params)

            def pick(a, b):
                return jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)

            return jax.tree.map(pick, new, args)

        new_keys, new_obs, new_carry = jax.lax.cond(
            any_in_batch(done), reset_done, lambda args: args, (keys, view_obs, carry))
        return new_keys, new_obs, new_carry, reward, terminated, truncated, info, view_obs

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Reset every sub-env: a fresh twin each when seeded (sub-env ``i`` gets ``seed + i``
        or ``seed[i]``), else each twin's next episode. ``options`` are ignored. Returns
        batched ``(obs, info)``."""
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise ValueError(f"seed has {len(seed)} entries; expected num_envs = "
                                 f"{self.num_envs}")
            seeds = [check_seed(f"seed[{i}]", s) for i, s in enumerate(seed)]
            super().reset(seed=seeds[0])
        else:
            seed = None if seed is None else check_seed("seed", seed)
            super().reset(seed=seed)
            if seed is None and self._carry is None:
                seed = int(self.np_random.integers(MAX_SEED + 1 - self.num_envs))
            seeds = None if seed is None else [check_seed("seed", seed + i)
                                               for i in range(self.num_envs)]
        if seeds is not None:
            keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
            self._keys, view_obs, self._carry = self._reset_fresh(keys, self.params)
        else:
            self._keys, view_obs, self._carry = self._reset_next(self._keys, self._carry,
                                                                 self.params)
        features, extras = _to_numpy(view_obs)
        return features, self._batch_info(extras)

    def step(self, actions):
        """Step every sub-env with ``actions [N, *single_action_space.shape]``. Returns
        ``(obs [N, D], reward [N] float64, terminated [N], truncated [N], info)``."""
        if self._carry is None:
            raise RuntimeError("step() needs reset() first")
        actions = as_action(self.view.space, actions, (self.num_envs,), "actions")
        out = self._step(self._keys, self._carry, actions, self.params)
        self._keys, view_obs, self._carry = out[:3]
        (features, extras), reward, terminated, truncated, env_info, (final_obs, _) = (
            _to_numpy((view_obs, *out[3:])))
        done = terminated | truncated
        info = self._batch_info(extras)
        info.update(self._batch_info(env_info))
        if done.any():
            final = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = final_obs[i]
            info["final_obs"], info["_final_obs"] = final, done.copy()
            info["final_info"] = self._batch_info(env_info, present=done)
            info["_final_info"] = done.copy()
        return (features, reward.astype(np.float64), terminated.astype(bool),
                truncated.astype(bool), info)

    def _batch_info(self, fields: dict, present: np.ndarray | None = None) -> dict:
        """Gymnasium's vector info layout: each key with a ``_key`` mask of the sub-envs
        that have it (all, or ``present``)."""
        info = {}
        for name, value in fields.items():
            info[name] = value
            info[f"_{name}"] = (np.ones(self.num_envs, bool) if present is None
                                else present.copy())
        return info


# ---------------------------------------------------------------------- registration
def register_envs() -> list[str]:
    """Register every env of :func:`dtwin_jax.registered_envs` with Gymnasium as
    ``dtwin_jax/<id>`` (``make`` builds :class:`GymnasiumEnv`, ``make_vec``
    :class:`GymnasiumVectorEnv`); ids already registered are left alone. Returns the ids."""
    ids = []
    for env_id in registered_envs():
        gym_id = f"{NAMESPACE}/{env_id}"
        if gym_id not in gymnasium.registry:
            gymnasium.register(
                id=gym_id,
                entry_point=f"{__name__}:GymnasiumEnv",
                vector_entry_point=f"{__name__}:GymnasiumVectorEnv",
                kwargs={"env": env_id},
            )
        ids.append(gym_id)
    return ids
