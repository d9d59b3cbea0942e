"""A learned twin: an LSTM next-state model and an MLP reward model fitted to logged real
transitions, wrapped as an env of our API, and the twin-enhanced DQN training loop of Zhang et
al. (arXiv 2311.16876).

**Models.** With ``e(a)`` the encoding of action ``a`` (a row of ``action_features [n, F]``:
one-hot by default, or e.g. the bandwidth split of a slicing action)::

    (c_t, h_t) = LSTM((c_{t-1}, h_{t-1}), [s_t, e(a_t)])      s_hat_{t+1} = W h_t + b
    r_hat_t    = MLP([s_t, e(a_t)])

fitted by Adam on the mean squared error of ``s_{t+1}`` (over windows of ``seq_len`` consecutive
transitions of one twin, the LSTM state restarted at zero at the window start and where an
episode starts) plus that of ``r_t``. Windows come from the DQN's flat replay ring
(:class:`~dtwin_jax.learners.dqn.Transition` items, ``num_envs`` twins interleaved, so one twin's
consecutive steps are ``num_envs`` slots apart). *Recalibration* continues the same fit
(same weights and Adam state) on the ring after fresh real data entered it.

**The twin env** (:class:`LearnedTwinEnv`): reset draws a start observation from ``start_obs``
(real observations from the ring) and zeros the LSTM state; a step returns
``clip(s_hat + obs_std * N(0, 1), low, high)`` (``obs_std [D]``: the models' residual RMS on
the ring) and the reward ``r_hat``; episodes are truncated after ``episode_length`` steps, never
terminated. Its params (:class:`TwinParams`) hold the model weights, so a refit twin is the same
env with new params and a DQN agent keeps its compiled program.

**Twin-enhanced training** (:func:`make_twin_train`): agent 1 acts in the real env, agent 2 in the
twin, both :class:`~dtwin_jax.learners.dqn.DQNAgent` with the same network. ``num_cycles``
cycles of::

    agent 1 <- agent 2's weights (not in the first cycle)
    real_updates updates of agent 1 in the real env (the first cycle is a plain DQN warm-up)
    fit the models for fit_steps Adam steps on agent 1's ring (the first fit, then
        recalibrations with the fresh real data)
    agent 2 <- agent 1's weights; twin_updates updates of agent 2 in the twin

(the last cycle's twin phase seeds nothing: agent 1 ends fine-tuned in the real env). The
real env appears once in the compiled loop (compiling its step is the slow part).
The weights are copied with fresh Adam moments and target = online. The whole loop is ONE
jitted function of a key (``jax.vmap`` runs seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from dtwin_jax._checks import check_bool, check_float, check_int, check_int_tuple
from dtwin_jax._params import CONCRETE
from dtwin_jax.envs.base import Environment
from dtwin_jax.envs.spaces import Box, Discrete
from dtwin_jax.learners import buffer, dqn
from dtwin_jax.learners.nets import MLP, orthogonal


@dataclass(frozen=True)
class WorldModelConfig:
    """Sizes and fitting schedule of the learned twin. Validated on construction.

    ``lstm_size``: LSTM width; ``reward_hidden``: MLP widths of the reward model; ``seq_len``:
    window length (transitions) of the dynamics fit; ``batch_size``: windows per Adam step
    (the reward model sees all their transitions); ``fit_steps``: Adam steps per (re)fit;
    ``num_start_obs``: real observations kept as twin
    start states; ``episode_length``: twin episode length (steps); ``noise``: add the residual
    noise to predicted observations.
    """

    lstm_size: int = 64
    reward_hidden: tuple[int, ...] = (64, 64)
    seq_len: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    fit_steps: int = 200
    num_start_obs: int = 64
    episode_length: int = 200
    noise: bool = True

    def __post_init__(self):
        check_int("lstm_size", self.lstm_size, lo=1)
        object.__setattr__(self, "reward_hidden",
                           check_int_tuple("reward_hidden", self.reward_hidden, lo=1))
        check_int("seq_len", self.seq_len, lo=1)
        check_int("batch_size", self.batch_size, lo=1)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_int("fit_steps", self.fit_steps, lo=1)
        check_int("num_start_obs", self.num_start_obs, lo=1)
        check_int("episode_length", self.episode_length, lo=1)
        check_bool("noise", self.noise)


class LSTMDynamics(nn.Module):
    """LSTM next-observation model. ``step(carry, x [..., D + F]) -> (carry, s_hat [..., D])``;
    ``__call__(carry, (x [T, B, D + F], reset [T, B]))`` scans it, restarting the state at
    resets, and returns ``(carry, s_hat [T, B, D])``."""

    obs_dim: int
    lstm_size: int

    def setup(self):
        self.cell = nn.OptimizedLSTMCell(self.lstm_size, kernel_init=orthogonal(1.0),
                                         recurrent_kernel_init=orthogonal(1.0))
        self.out = nn.Dense(self.obs_dim, kernel_init=orthogonal(1.0))

    def step(self, carry, x):
        """One LSTM step: ``carry (c, h)`` each ``[..., H]``, ``x [..., D + F]`` (observation +
        action encoding) -> ``(carry, s_hat [..., D])``, the predicted next observation."""
        carry, h = self.cell(carry, x)
        return carry, self.out(h)

    def __call__(self, carry, inputs):
        xs, resets = inputs

        def body(mdl, carry, inp):
            x, reset = inp
            carry = jax.tree.map(lambda c: jnp.where(reset[..., None], 0.0, c), carry)
            return mdl.step(carry, x)

        return nn.scan(body, variable_broadcast="params", split_rngs={"params": False})(
            self, carry, (xs, resets))

    def zero_carry(self, batch_shape) -> tuple[jax.Array, jax.Array]:
        """A fresh LSTM state ``(c, h)``, each ``[*batch_shape, lstm_size]`` float32 zeros."""
        z = jnp.zeros((*batch_shape, self.lstm_size), jnp.float32)
        return z, z


class RewardMLP(nn.Module):
    """``[..., D + F] -> [...]``: predicted reward."""

    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        return nn.Dense(1, kernel_init=orthogonal(1.0))(MLP(self.hidden_sizes, "relu")(x))[..., 0]


@struct.dataclass
class TwinParams:
    """Params of :class:`LearnedTwinEnv`. ``dynamics``/``reward``: Flax weights;
    ``action_features [n, F]`` f32: action encodings; ``obs_std [D]`` f32 >= 0: observation
    noise; ``start_obs [P, D]`` f32: start observations; ``episode_length`` int32 >= 1."""

    dynamics: Any
    reward: Any
    action_features: jax.Array
    obs_std: jax.Array
    start_obs: jax.Array
    episode_length: jax.Array


@struct.dataclass
class TwinState:
    """``carry``: the LSTM's ``(c [H], h [H])``; ``obs [D]``: current observation; ``t``: steps
    in the episode."""

    carry: tuple
    obs: jax.Array
    t: jax.Array


class LearnedTwinEnv(Environment):
    """A learned model of a single-agent ``Discrete(n)`` env with flat ``Box`` observations,
    as an env of our API (module docstring).

    Args:
        obs_low, obs_high: ``[D]`` bounds of the real observations (clip targets; may be inf).
        num_actions: ``n``.
        config: :class:`WorldModelConfig` (model sizes, default episode length).
        action_features: ``[n, F]`` action encodings for the default params (one-hot if None).
    """

    def __init__(self, obs_low, obs_high, num_actions: int, config: WorldModelConfig,
                 action_features=None):
        self.obs_low = np.asarray(obs_low, np.float32).reshape(-1)
        self.obs_high = np.asarray(obs_high, np.float32).reshape(-1)
        if self.obs_low.shape != self.obs_high.shape:
            raise ValueError(f"obs_low {self.obs_low.shape} and obs_high {self.obs_high.shape} "
                             "must have the same shape")
        self.obs_dim = self.obs_low.size
        self.num_actions = check_int("num_actions", num_actions, lo=1)
        self.config = config
        feats = np.eye(num_actions, dtype=np.float32) if action_features is None else \
            np.asarray(action_features, np.float32)
        if feats.ndim != 2 or feats.shape[0] != num_actions or not np.isfinite(feats).all():
            raise ValueError(f"action_features must be a finite [num_actions={num_actions}, F] "
                             f"array, got shape {feats.shape}")
        self._action_features = feats
        self.dynamics = LSTMDynamics(self.obs_dim, config.lstm_size)
        self.reward_model = RewardMLP(config.reward_hidden)

    @classmethod
    def of(cls, env: Environment, env_params, config: WorldModelConfig, action_features=None):
        """The twin shape of a real single-agent ``Discrete`` env with a ``Box`` observation."""
        space = env.observation_space(env_params)
        if not isinstance(space, Box):
            raise TypeError(f"LearnedTwinEnv needs a Box observation space; got {space!r}")
        shape = space.shape
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return cls(low, high, dqn.num_actions_of(env, env_params, "LearnedTwinEnv"), config,
                   action_features)

    @property
    def feature_dim(self) -> int:
        """``F``: width of the action encodings ``action_features [n, F]``."""
        return self._action_features.shape[1]

    def init_weights(self, key) -> dict:
        """Fresh ``{"dynamics": ..., "reward": ...}`` weights."""
        k_dyn, k_rew = jax.random.split(key)
        x = jnp.zeros((1, self.obs_dim + self.feature_dim), jnp.float32)
        carry = self.dynamics.zero_carry((1,))
        dyn = self.dynamics.init(k_dyn, carry, x, method=LSTMDynamics.step)
        return {"dynamics": dyn, "reward": self.reward_model.init(k_rew, x)}

    @property
    def default_params(self) -> TwinParams:
        """Untrained weights (key 0), unit noise, one all-zero start observation."""
        w = self.init_weights(jax.random.PRNGKey(0))
        return TwinParams(w["dynamics"], w["reward"], jnp.asarray(self._action_features),
                          jnp.ones(self.obs_dim, jnp.float32),
                          jnp.zeros((1, self.obs_dim), jnp.float32),
                          jnp.int32(self.config.episode_length))

    def check_params(self, params: TwinParams, rules=CONCRETE) -> None:
        rules.array("action_features", params.action_features, (self.num_actions, None))
        rules.array("obs_std", params.obs_std, (self.obs_dim,), 0.0)
        rules.array("start_obs", params.start_obs, (None, self.obs_dim))
        rules.array("episode_length", params.episode_length, (), 1, integer=True)

    def observation_space(self, params=None) -> Box:
        return Box(self.obs_low, self.obs_high, (self.obs_dim,))

    def action_space(self, params=None) -> Discrete:
        return Discrete(self.num_actions)

    def reset_env(self, key, params: TwinParams):
        idx = jax.random.randint(key, (), 0, params.start_obs.shape[0])
        obs = params.start_obs[idx]
        return obs, TwinState(self.dynamics.zero_carry(()), obs, jnp.int32(0))

    def step_env(self, key, state: TwinState, action, params: TwinParams):
        a = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.num_actions - 1)
        x = jnp.concatenate([state.obs, params.action_features[a]])
        carry, mean = self.dynamics.apply(params.dynamics, state.carry, x,
                                          method=LSTMDynamics.step)
        reward = self.reward_model.apply(params.reward, x)
        noise = params.obs_std * jax.random.normal(key, mean.shape) if self.config.noise else 0.0
        obs = jnp.clip(mean + noise, self.obs_low, self.obs_high).astype(jnp.float32)
        t = state.t + 1
        return obs, TwinState(carry, obs, t), reward.astype(jnp.float32), jnp.bool_(False), \
            t >= params.episode_length, {}


class FitState(NamedTuple):
    """Weights and Adam state of the twin's models."""

    weights: dict
    opt_state: Any


class Fitter(NamedTuple):
    """``init(key) -> FitState``; ``fit(state, ring, key, steps) -> (state, loss [steps])``;
    ``twin_params(state, ring, key) -> TwinParams``; ``loss(weights, windows) -> (total,
    (dyn_mse, rew_mse))``; ``windows(ring, key, batch) -> Transition [batch, seq_len]``."""

    init: Callable
    fit: Callable
    twin_params: Callable
    loss: Callable
    windows: Callable


def make_fitter(twin: LearnedTwinEnv, num_envs: int) -> Fitter:
    """Fitting functions of ``twin``'s models to a DQN ring filled by ``num_envs`` twins."""
    cfg = twin.config
    num_envs = check_int("num_envs", num_envs, lo=1)
    tx = optax.adam(cfg.lr)
    feats = jnp.asarray(twin._action_features)

    def windows(ring: buffer.FlatBufferState, key, batch: int):
        span = num_envs * cfg.seq_len
        starts = jnp.maximum(ring.size - span + 1, 1)
        offset = jnp.minimum((jax.random.uniform(key, (batch,)) * starts).astype(jnp.int32),
                             starts - 1)
        oldest = (ring.pos - ring.size) % ring.capacity
        idx = (oldest + offset[:, None] + num_envs * jnp.arange(cfg.seq_len)) % ring.capacity
        return jax.tree.map(lambda d: d[idx], ring.data)

    def loss_fn(weights, w: dqn.Transition):
        x = jnp.concatenate([w.obs, feats[w.action]], -1)  # [B, L, D + F]
        xs = jnp.swapaxes(x, 0, 1)  # [L, B, D + F]
        reset = jnp.swapaxes(w.first, 0, 1).at[0].set(True)
        _, pred = twin.dynamics.apply(weights["dynamics"], twin.dynamics.zero_carry(
            (x.shape[0],)), (xs, reset))
        dyn = jnp.mean(jnp.square(pred - jnp.swapaxes(w.next_obs, 0, 1)), axis=(0, 1))  # [D]
        rew = jnp.mean(jnp.square(twin.reward_model.apply(weights["reward"], x) - w.reward))
        return dyn.mean() + rew, (dyn, rew)

    def init(key) -> FitState:
        weights = twin.init_weights(key)
        return FitState(weights, tx.init(weights))

    def fit(state: FitState, ring, key, steps: int):
        def body(state, k):
            grads, (dyn, rew) = jax.grad(loss_fn, has_aux=True)(state.weights,
                                                                windows(ring, k, cfg.batch_size))
            upd, opt = tx.update(grads, state.opt_state, state.weights)
            return FitState(optax.apply_updates(state.weights, upd), opt), dyn.mean() + rew

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    def twin_params(state: FitState, ring, key) -> TwinParams:
        k_win, k_start = jax.random.split(key)
        _, (dyn, _) = loss_fn(state.weights, windows(ring, k_win, 4 * cfg.batch_size))
        idx = buffer.flat_sample_indices(ring, k_start, cfg.num_start_obs)
        return TwinParams(state.weights["dynamics"], state.weights["reward"], feats,
                          jnp.sqrt(dyn), ring.data.obs[idx], jnp.int32(cfg.episode_length))

    return Fitter(init, fit, twin_params, loss_fn, windows)


@dataclass(frozen=True)
class TwinLoopConfig:
    """Schedule of :func:`make_twin_train` (in updates of the agents' own configs).

    Agent 1 does ``num_cycles * real_updates`` real updates in all, which must equal its
    config's ``num_updates`` (so its epsilon schedule spans exactly the real budget).
    """

    num_cycles: int = 4
    real_updates: int = 100
    twin_updates: int = 500

    def __post_init__(self):
        check_int("num_cycles", self.num_cycles, lo=1)
        check_int("real_updates", self.real_updates, lo=1)
        check_int("twin_updates", self.twin_updates, lo=1)

    @property
    def real_total(self) -> int:
        """Agent 1's real updates in all: ``num_cycles * real_updates``."""
        return self.num_cycles * self.real_updates


def _seed(runner: dqn.DQNState, net_params) -> dqn.DQNState:
    ts = runner.train_state
    ts = ts.replace(params=net_params, opt_state=ts.tx.init(net_params))
    return runner._replace(train_state=ts, target_params=net_params)


def make_twin_train(
    env: Environment,
    env_params,
    real_config: dqn.DQNConfig,
    twin_config: dqn.DQNConfig,
    loop: TwinLoopConfig,
    model_config: WorldModelConfig,
    action_features=None,
    switchable: bool = False,
) -> Callable[[chex.PRNGKey], tuple[tuple, dict]]:
    """Build ``train(key) -> ((agent1, agent2, fit_state), metrics)``: twin-enhanced DQN
    (module docstring), one jit-/vmap-able function.

    ``real_config`` (agent 1) and ``twin_config`` (agent 2) must share the network
    (``hidden_sizes``, ``activation``, ``dueling``; ``ValueError`` otherwise) and
    ``real_config.num_updates == loop.real_total``. ``metrics``: agent 1's DQN metrics per real
    update ``[loop.real_total]`` (as :func:`dqn.make_train`'s), plus ``twin_reward`` and
    ``twin_loss`` ``[num_cycles, twin_updates]`` (agent 2 in the twin) and ``model_loss``
    ``[num_cycles]`` (the models' training loss at the end of each (re)fit). ``switchable``:
    ``train(key, flags)`` takes the ``(double, dueling)`` bools of both agents (variants as
    data, :mod:`dtwin_jax.learners.dqn`).
    """
    env_params = env.default_params if env_params is None else env_params
    for name in ("hidden_sizes", "activation", "dueling"):
        if getattr(real_config, name) != getattr(twin_config, name):
            raise ValueError(f"real_config.{name}={getattr(real_config, name)!r} and "
                             f"twin_config.{name}={getattr(twin_config, name)!r} must match")
    if real_config.num_updates != loop.real_total:
        raise ValueError(f"real_config.num_updates={real_config.num_updates} must equal "
                         f"num_cycles * real_updates = {loop.real_total}")
    twin = LearnedTwinEnv.of(env, env_params, model_config, action_features)
    agent1 = dqn.make_agent(env, env_params, real_config, switchable=switchable)
    agent2 = dqn.make_agent(twin, twin.default_params, twin_config, switchable=switchable)
    fitter = make_fitter(twin, real_config.num_envs)
    real_params = agent1.batch_params(env_params)

    def train(key, flags=None):
        k1, k2, k_fit, k_cycles = jax.random.split(key, 4)
        r1 = agent1.init(k1, real_params, flags=flags)
        r2 = agent2.init(k2, agent2.batch_params(twin.default_params), r1.train_state.params,
                         r1.flags)

        def cycle(carry, xs):
            r1, r2, fit = carry
            i, k = xs
            k_fit, k_tp = jax.random.split(k)
            seeded = jax.tree.map(lambda a, b: jnp.where(i > 0, a, b), r2.train_state.params,
                                  r1.train_state.params)
            r1 = jax.tree.map(lambda a, b: jnp.where(i > 0, a, b), _seed(r1, seeded), r1)
            r1, m1 = jax.lax.scan(lambda r, _: agent1.update(r, real_params), r1, None,
                                  loop.real_updates)
            fit, fit_loss = fitter.fit(fit, r1.buffer, k_fit, model_config.fit_steps)
            tparams = agent2.batch_params(fitter.twin_params(fit, r1.buffer, k_tp))
            r2, m2 = jax.lax.scan(lambda r, _: agent2.update(r, tparams),
                                  _seed(r2, r1.train_state.params), None, loop.twin_updates)
            return (r1, r2, fit), (m1, m2["reward"], m2["loss"], fit_loss[-1])

        steps = (jnp.arange(loop.num_cycles), jax.random.split(k_cycles, loop.num_cycles))
        (r1, r2, fit), (m1, twin_reward, twin_loss, model_loss) = jax.lax.scan(
            cycle, (r1, r2, fitter.init(k_fit)), steps)
        metrics = {k: v.reshape(-1) for k, v in m1.items()}
        metrics["twin_reward"] = twin_reward
        metrics["twin_loss"] = twin_loss
        metrics["model_loss"] = model_loss
        return (r1, r2, fit), metrics

    return train
