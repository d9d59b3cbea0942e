"""Deep Q-learning (DQN, double DQN, dueling DQN), PureJaxRL-shaped, for any single-agent
``Discrete`` env of our API.

``train = make_train(env, env_params, config)`` returns ONE function of a PRNG key whose body is
a ``lax.scan`` over updates, so ``jax.jit(train)(key)`` is a whole training run and
``jax.vmap(train)(keys)`` runs many seeds. Each update steps ``num_envs`` twins ``num_steps``
times with an epsilon-greedy policy (:func:`dtwin_jax.learners.common.env_step`), appends the
``num_envs * num_steps`` transitions to a flat replay ring (:mod:`.buffer`), then takes
``num_epochs`` Adam steps on minibatches of ``batch_size`` transitions drawn uniformly from the
ring (once ``learning_starts`` env steps have been collected). The target network follows the
online one every ``target_update_every`` updates: ``target <- tau * online + (1 - tau) *
target`` (``tau = 1``: a periodic hard copy; ``tau < 1``: Polyak averaging).

TD target of a transition ``(s, a, r, s', terminated)`` (``s'`` the TRUE next observation,
``info["final_observation"]`` at an episode end, so a time limit bootstraps and a termination
does not)::

    plain:   y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
    double:  y = r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q_online(s', a'))

and the loss is the mean over the minibatch of ``huber(Q_online(s, a) - y)`` (``loss="huber"``,
delta 1) or ``0.5 (Q_online(s, a) - y)^2`` (``loss="mse"``). Dueling heads
(:class:`~dtwin_jax.learners.nets.QHead`) compute ``Q = V + A - mean_a A``.

Epsilon decays linearly from ``eps_start`` to ``eps_end`` over the first ``eps_decay_frac *
total_timesteps`` env steps (the agent's own step counter, so an agent resumed with
:meth:`DQNAgent.update` keeps its schedule).

Variants as data. ``make_agent(..., switchable=True)`` builds a network with both a plain and a
dueling head and reads ``double``/``dueling`` from the agent state (``init(..., flags=(double,
dueling))``, bool arrays), so ONE compiled program trains all four variants side by side under
a ``vmap`` (compiling an expensive env's step once instead of once per variant); the unused
head's weights get zero gradients.

The pieces are exposed for loops that switch envs (the twin-enhanced training of
:mod:`dtwin_jax.twins.world_model`): :func:`make_agent` returns a :class:`DQNAgent` whose
``init``/``update`` take the (batched) env params as an argument, so a learned twin whose
weights live in its params can be refitted between updates of the same compiled program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from dtwin_jax._checks import check_bool, check_choice, check_float, check_int, check_int_tuple
from dtwin_jax.envs.base import Environment, MultiAgentEnv
from dtwin_jax.envs.spaces import Discrete
from dtwin_jax.learners import buffer, common
from dtwin_jax.learners.common import masked_mean
from dtwin_jax.learners.nets import ACTIVATIONS, MLP, QHead, greedy_action
from dtwin_jax.learners.progress import ProgressBar

#: names of the metrics every update reports (``info_keys`` entries are added under their names)
METRIC_NAMES = ("reward", "episode_return", "episodes", "loss", "q_mean", "epsilon")

LOSSES = ("huber", "mse")


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyper-parameters (CleanRL/PureJaxQL-like defaults). Validated on construction.

    ``total_timesteps`` counts twin steps; ``num_updates = total_timesteps // (num_envs *
    num_steps)``. ``buffer_size`` transitions are kept; gradient steps start once
    ``learning_starts`` twin steps (and ``batch_size`` transitions) are stored.
    ``target_update_every`` is in updates, ``tau`` in (0, 1]. ``double``: the online net picks
    the next action, the target net scores it; ``dueling``: value + advantage head.
    ``info_keys`` as in :class:`~dtwin_jax.learners.ppo.PPOConfig`. :func:`slicing_preset`
    gives the slicing paper's settings (Adam 1e-3, hidden 256-256-128-128).
    """

    num_envs: int = 4
    num_steps: int = 1
    total_timesteps: int = 100_000
    buffer_size: int = 10_000
    batch_size: int = 64
    learning_starts: int = 1_000
    num_epochs: int = 1
    lr: float = 5e-4
    gamma: float = 0.99
    tau: float = 1.0
    target_update_every: int = 100
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_frac: float = 0.5
    double: bool = False
    dueling: bool = False
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    loss: str = "huber"
    max_grad_norm: float = 10.0
    info_keys: tuple[str, ...] = ()

    def __post_init__(self):
        check_int("num_envs", self.num_envs, lo=1)
        check_int("num_steps", self.num_steps, lo=1)
        check_int("total_timesteps", self.total_timesteps, lo=self.num_envs * self.num_steps)
        check_int("buffer_size", self.buffer_size, lo=self.num_envs * self.num_steps)
        check_int("batch_size", self.batch_size, lo=1)
        check_int("learning_starts", self.learning_starts, lo=0)
        check_int("num_epochs", self.num_epochs, lo=1)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("tau", self.tau, 0.0, 1.0, lo_open=True)
        check_int("target_update_every", self.target_update_every, lo=1)
        check_float("eps_start", self.eps_start, 0.0, 1.0)
        check_float("eps_end", self.eps_end, 0.0, 1.0)
        check_float("eps_decay_frac", self.eps_decay_frac, 0.0, 1.0)
        for name in ("double", "dueling"):
            check_bool(name, getattr(self, name))
        object.__setattr__(self, "hidden_sizes",
                           check_int_tuple("hidden_sizes", self.hidden_sizes, lo=1))
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("loss", self.loss, LOSSES)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, lo_open=True)
        object.__setattr__(self, "info_keys",
                           common.validate_info_keys(self.info_keys, METRIC_NAMES))

    @property
    def steps_per_update(self) -> int:
        """Twin steps collected per update: ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        """Updates in a run: ``total_timesteps // steps_per_update`` (remainder dropped)."""
        return self.total_timesteps // self.steps_per_update


def slicing_preset(**overrides) -> DQNConfig:
    """The slicing paper's learner (PARAMS.md section 3): Adam lr 1e-3, hidden 256-256-128-128,
    one twin; ``overrides`` replace any field."""
    base = dict(num_envs=1, lr=1e-3, hidden_sizes=(256, 256, 128, 128), batch_size=32,
                learning_starts=32, target_update_every=25, gamma=0.9, eps_decay_frac=0.5)
    return DQNConfig(**{**base, **overrides})


class QNetwork(nn.Module):
    """MLP torso and a plain or dueling :class:`QHead`: ``[..., D] -> [..., num_actions]``.

    ``switchable``: both heads exist and ``__call__(x, dueling)`` picks one with the (traced)
    bool ``dueling``; otherwise the static field ``dueling`` decides and the argument is
    ignored."""

    num_actions: int
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    dueling: bool = False
    switchable: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, dueling=None) -> jax.Array:
        h = MLP(self.hidden_sizes, self.activation)(x)
        if not self.switchable:
            return QHead((self.num_actions,), self.dueling)(h)
        plain = QHead((self.num_actions,), False, name="plain_head")(h)
        duel = QHead((self.num_actions,), True, name="dueling_head")(h)
        return jnp.where(dueling, duel, plain)


class Transition(NamedTuple):
    """One stored transition (leading ``[N]`` in the buffer). ``obs``/``next_obs [D]`` f32,
    ``action`` int32, ``reward`` f32, ``terminated`` bool (no bootstrap), ``first`` bool
    (``obs`` starts an episode; used by sequence models fitted to the buffer)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    first: jax.Array


class DQNState(NamedTuple):
    """The carry of the training scan. ``timesteps``/``updates``: int32 counters of env steps
    and updates done; ``last_return``: mean return of the latest completed episodes (NaN
    before any); ``flags [2]`` bool: ``(double, dueling)`` (read only by a switchable agent)."""

    train_state: TrainState
    target_params: Any
    buffer: buffer.FlatBufferState
    collector: common.Collector
    timesteps: jax.Array
    updates: jax.Array
    last_return: jax.Array
    key: jax.Array
    flags: jax.Array


def num_actions_of(env: Environment, params, learner: str = "DQN") -> int:
    """``n`` of the env's ``Discrete(n)`` action space; ``TypeError`` naming the space for a
    multi-agent env or any other space."""
    space = env.action_space(params)
    if isinstance(env, MultiAgentEnv):
        raise TypeError(f"{learner} is single-agent; {env.name} is multi-agent "
                        f"(action space {space!r}); use VDN/IQL")
    if not (isinstance(space, Discrete) and space.shape == ()):
        raise TypeError(f"{learner} accepts a single-agent Discrete(n) action space only; "
                        f"got {space!r}")
    return int(space.n)


def td_target(q_next_online: jax.Array, q_next_target: jax.Array, reward: jax.Array,
              terminated: jax.Array, gamma: float, double: bool) -> jax.Array:
    """TD targets ``[B]`` from next-state Q-values ``[B, n]`` (module docstring). ``double``: a
    bool, or a traced bool scalar (both targets are then computed and one is selected);
    ``q_next_online`` may be ``None`` when ``double`` is the constant False."""
    q_next = q_next_target.max(-1)
    if double is not False:
        a_star = greedy_action(q_next_online, None)
        q_dbl = jnp.take_along_axis(q_next_target, a_star[:, None], axis=-1)[:, 0]
        q_next = jnp.where(double, q_dbl, q_next)
    return reward + gamma * (1.0 - terminated.astype(jnp.float32)) * q_next


def epsilon(config: DQNConfig, timesteps: jax.Array) -> jax.Array:
    """Exploration rate after ``timesteps`` env steps (linear decay, then constant)."""
    span = max(config.eps_decay_frac * config.total_timesteps, 1.0)
    frac = jnp.minimum(timesteps.astype(jnp.float32) / span, 1.0)
    return config.eps_start + frac * (config.eps_end - config.eps_start)


def make_loss(network: QNetwork, config: DQNConfig) -> Callable:
    """``loss(params, target_params, batch: Transition, flags=None) -> (loss, q_mean)``: the
    DQN loss of a minibatch (module docstring), differentiable in ``params``. ``flags``:
    ``(double, dueling)`` bools for a switchable network (``config``'s otherwise)."""

    def loss_fn(params, target_params, batch: Transition, flags=None):
        if network.switchable:
            double, dueling = flags[0], flags[1]
        else:
            double, dueling = config.double, None
        q = network.apply(params, batch.obs, dueling)  # [B, n]
        q_a = jnp.take_along_axis(q, batch.action[:, None].astype(jnp.int32), axis=-1)[:, 0]
        q_next_target = network.apply(target_params, batch.next_obs, dueling)
        q_next_online = None if double is False else network.apply(params, batch.next_obs,
                                                                   dueling)
        y = jax.lax.stop_gradient(td_target(q_next_online, q_next_target, batch.reward,
                                            batch.terminated, config.gamma, double))
        err = q_a - y
        loss = optax.huber_loss(err, delta=1.0) if config.loss == "huber" else 0.5 * err**2
        return loss.mean(), q_a.mean()

    return loss_fn


class DQNAgent(NamedTuple):
    """The parts of a DQN run on one env (built by :func:`make_agent`).

    ``init(key, params, net_params=None, flags=None) -> DQNState`` (``params`` batched,
    leading ``[num_envs]``; optional ``net_params`` to start from; ``flags``: ``(double,
    dueling)``, default the config's); ``update(state, params) -> (state, metrics)``: one update
    (scan body); ``batch_params(env_params)``: broadcast one params struct to ``[num_envs]``;
    ``network``; ``loss``: :func:`make_loss`; ``act(net_params, obs [..., D], dueling=None)
    -> action`` (greedy, int32).
    """

    init: Callable
    update: Callable
    batch_params: Callable
    network: QNetwork
    loss: Callable
    act: Callable
    config: DQNConfig


def make_agent(env: Environment, env_params=None, config: DQNConfig | None = None,
               progress: bool = False, switchable: bool = False) -> DQNAgent:
    """Build the :class:`DQNAgent` of ``env`` (single-agent ``Discrete``; ``TypeError``
    naming the space otherwise). ``env_params`` (one twin's) is used for the spaces and the
    ``info_keys`` check only. ``switchable``: variants as data (module docstring)."""
    config = DQNConfig() if config is None else config
    env_params = env.default_params if env_params is None else env_params
    n = num_actions_of(env, env_params)
    vec = common.make_vec_env(env, config.num_envs)
    network = QNetwork(n, config.hidden_sizes, config.activation, config.dueling,
                       bool(switchable))
    loss_fn = make_loss(network, config)
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr))
    batch_params = vec.inner.batch_params
    info_agent_keys = common.check_info_keys(vec, batch_params(env_params), config.info_keys)
    bar = ProgressBar(config.num_updates, desc=f"DQN {env.name}") if progress else None
    obs_dim = int(jnp.size(jnp.zeros(env.observation_space(env_params).shape)))
    example = Transition(jnp.zeros(obs_dim), jnp.int32(0), jnp.float32(0),
                         jnp.zeros(obs_dim), jnp.bool_(False), jnp.bool_(False))

    def init(key, params, net_params=None, flags=None) -> DQNState:
        k_net, k_reset, key = jax.random.split(key, 3)
        collector = common.init_collector(vec, k_reset, params)
        flags = jnp.asarray((config.double, config.dueling) if flags is None else flags, bool)
        if net_params is None:
            net_params = network.init(k_net, jnp.zeros((1, obs_dim), jnp.float32), flags[1])
        ts = TrainState.create(apply_fn=network.apply, params=net_params, tx=tx)
        return DQNState(ts, net_params, buffer.flat_init(example, config.buffer_size),
                        collector, jnp.int32(0), jnp.int32(0), jnp.float32(jnp.nan), key,
                        flags)

    def update(runner: DQNState, params):
        key, k_roll, k_train = jax.random.split(runner.key, 3)
        eps = epsilon(config, runner.timesteps)
        net_params = runner.train_state.params

        def policy(k, view, first, hidden):
            greedy = greedy_action(network.apply(net_params, view.features,
                                                 runner.flags[1]), None)
            k_rand, k_explore = jax.random.split(k)
            rand = jax.random.randint(k_rand, greedy.shape, 0, n, jnp.int32)
            a = jnp.where(jax.random.uniform(k_explore, greedy.shape) < eps, rand, greedy)
            return a, a, {}, hidden

        def rollout_step(collector, k):
            return common.env_step(vec, params, policy, collector, k, config.info_keys,
                                   info_agent_keys)

        collector, (traj, stats) = jax.lax.scan(
            rollout_step, runner.collector, jax.random.split(k_roll, config.num_steps))
        first = jnp.broadcast_to(traj.first[:, :, None], traj.reward.shape)
        items = Transition(traj.view.features, traj.action, traj.reward,
                           traj.next_view.features, traj.terminated, first)
        items = jax.tree.map(lambda x: x.reshape(-1, *x.shape[3:]), items)  # [T*E*1, ...]
        buf = buffer.flat_add(runner.buffer, items)
        timesteps = runner.timesteps + config.steps_per_update
        learn = (timesteps >= config.learning_starts) & buffer.flat_can_sample(
            buf, config.batch_size)

        def grad_step(ts, k):
            batch = buffer.flat_sample(buf, k, config.batch_size)
            (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                ts.params, runner.target_params, batch, runner.flags)
            new = ts.apply_gradients(grads=grads)
            ts = jax.tree.map(lambda a, b: jnp.where(learn, a, b), new, ts)
            return ts, (loss, q_mean)

        ts, (loss, q_mean) = jax.lax.scan(grad_step, runner.train_state,
                                          jax.random.split(k_train, config.num_epochs))
        updates = runner.updates + 1
        sync = learn & (updates % config.target_update_every == 0)
        target = jax.tree.map(
            lambda o, t: jnp.where(sync, config.tau * o + (1.0 - config.tau) * t, t),
            ts.params, runner.target_params)
        episodes, last_return = common.episode_stats(stats, runner.last_return)
        metrics = {
            "reward": masked_mean(traj.reward, traj.view.live),
            "episode_return": last_return,
            "episodes": episodes,
            "loss": jnp.where(learn, loss.mean(), jnp.nan),
            "q_mean": jnp.where(learn, q_mean.mean(), jnp.nan),
            "epsilon": eps,
        }
        metrics.update({k: stats[k].mean() for k in config.info_keys})
        if bar is not None:
            bar.update(runner.updates, reward=metrics["reward"])
        runner = DQNState(ts, target, buf, collector, timesteps, updates, last_return, key,
                          runner.flags)
        return runner, metrics

    def act(net_params, obs, dueling=None):
        obs = jnp.asarray(obs, jnp.float32)
        return greedy_action(network.apply(net_params, obs, dueling), None)

    return DQNAgent(init, update, batch_params, network, loss_fn, act, config)


def make_train(
    env: Environment,
    env_params=None,
    config: DQNConfig | None = None,
    progress: bool = False,
    switchable: bool = False,
    batched_params: bool = False,
) -> Callable[[chex.PRNGKey], tuple[DQNState, dict]]:
    """Build ``train(key) -> (DQNState, metrics)``: a full DQN run, jit- and vmap-able.

    ``env_params``: one params struct broadcast to all twins (default ``env.default_params``),
    or with ``batched_params=True`` a struct whose leaves carry a leading ``[num_envs]`` axis
    (heterogeneous twins; :func:`dtwin_jax.parallel.train_sharded` passes one so).
    ``metrics`` maps :data:`METRIC_NAMES` and ``config.info_keys`` to ``[num_updates]`` float32
    arrays: ``reward`` (mean per step), ``episode_return`` (as PPO's: mean return of the
    episodes completed in the update, carried over when none did, NaN before the first),
    ``episodes``, ``loss`` and ``q_mean`` (mean over the update's gradient steps of the loss and
    of ``Q(s, a)``; NaN before learning starts), ``epsilon``. ``progress=True``: a tqdm bar.
    ``switchable``: ``train(key, flags)`` takes ``(double, dueling)`` bools (variants as data,
    module docstring).
    """
    config = DQNConfig() if config is None else config
    vec = common.make_vec_env(env, config.num_envs)
    params, one_params = common.twin_batch(vec, env_params, batched_params)
    agent = make_agent(env, one_params, config, progress, switchable)

    def train(key: chex.PRNGKey, flags=None) -> tuple[DQNState, dict]:
        runner = agent.init(key, params, flags=flags)
        return jax.lax.scan(lambda r, _: agent.update(r, params), runner, None,
                            config.num_updates)

    return train
