"""VDN and IQL with recurrent (GRU) Q-networks, PureJaxRL/JaxMARL-shaped, in one module.

``train = make_train(env, env_params, VDNConfig(mixer="vdn" | "iql"))`` returns ONE function
of a PRNG key whose body is a ``lax.scan`` over updates: ``jax.jit(train)(key)`` is a whole
training run and ``jax.vmap(train)(keys)`` runs seeds. Each update collects ``num_steps``
steps of ``num_envs`` twins with epsilon-greedy actions, appends the ``num_envs`` chunks
(sequences of ``num_steps`` steps) to a replay buffer of chunks, runs ``num_epochs`` Adam steps
on minibatches of ``batch_size`` chunks, and refreshes the target network every
``target_update_interval`` updates. The first ``learning_starts`` twin-steps only fill the
buffer (a separate scan without gradient steps, so no ``lax.cond`` on a counter).

**Network.** Per agent: ``Dense(hidden) + ReLU -> GRU(hidden) -> QHead`` (plain or dueling).
Parameters are *shared by all agents*; the agents are told apart by the agent-id one-hot
that the env puts in their observations (``dnt-sync-v0`` does). Shared because the BSs play
symmetric roles (the same decision on the same kind of features), so one network learns from
M times as many transitions, its size does not grow with M, and a batch of agents is a single
fused forward. The GRU state restarts where an observation starts an episode
(:class:`~dtwin_jax.learners.nets.ResetGRU`).

**Actions and spaces.** Accepted: ``Discrete`` (shape ``()``) and one-dimensional
``MultiDiscrete`` action spaces, single-agent (one agent, no mask) or multi-agent
(:class:`~dtwin_jax.envs.base.AgentObs`, masks per the platform's convention); any other space
raises ``TypeError``. Internally both are *factored*: ``Discrete(n)`` is one factor of ``n``
values, ``MultiDiscrete(nvec)`` is ``F`` factors with one Q head each (``q [..., F, n_max]``,
values ``>= nvec[f]`` always illegal). **The Q-value of a joint action is the sum over factors**
``Q(s, a) = sum_f Q_f(s, a_f)``, so its greedy action is the per-factor masked argmax. The
epsilon-greedy choice is per agent: with probability epsilon every factor takes a value
uniformly among its legal ones, else the greedy one. Illegal values (mask False) are never
chosen, greedy or random.

**Targets** (one-step, double-Q by default). With ``s'`` the true next observation
(``info["final_observation"]`` where an episode ended, continued from the GRU state of ``s``)::

    a*_m   = argmax_a Q_online(s'_m, a)         (masked; Q_target's own argmax if not double_q)
    IQL:   y_m = r_m + gamma (1 - term_m) Q_target(s'_m, a*_m)
           loss = mean over live agent-steps of (Q_online(s_m, a_m) - y_m)^2
    VDN:   Q_tot = sum_{live m} Q_online(s_m, a_m)
           y = team_reward + gamma sum_{live m} (1 - term_m) Q_target(s'_m, a*_m)
           loss = mean over twin-steps with a live agent of (Q_tot - y)^2

IQL trains each agent on its local ``reward[m]``; VDN on ``info["team_reward"]`` (required).
Rewards are multiplied by ``reward_scale`` in the targets only (metrics stay in env units).

**Replay.** Items are chunks ``[num_steps, A, ...]`` (features, bit-packed masks, first
flags, actions, rewards, terminations, live flags and the true next observations). A chunk is
replayed from a zero GRU state at its start; steps before the first episode start of the
chunk and within its first ``burn_in`` steps only warm the GRU up and are excluded from the
loss. With ``num_steps`` equal to the episode length and synchronous episodes (as in
``dnt-sync-v0``) every chunk is a whole episode and nothing needs burning in.

Metrics per update (``[num_updates]`` float32, ``make_train``'s docstring): ``reward``,
``episode_return``, ``episodes``, ``loss``, ``q_value``, ``epsilon`` plus ``info_keys``.
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

from dtwin_jax._checks import check_bool, check_choice, check_float, check_int
from dtwin_jax.envs.base import Environment, MultiAgentEnv
from dtwin_jax.learners import buffer, common
from dtwin_jax.learners.common import Collector, masked_mean
from dtwin_jax.learners.nets import MASKED_Q, ActionSpec, QHead, ResetGRU, orthogonal
from dtwin_jax.learners.progress import ProgressBar

MIXERS = ("vdn", "iql")

#: names of the metrics every update reports (``info_keys`` entries are added under their names)
METRIC_NAMES = ("reward", "episode_return", "episodes", "loss", "q_value", "epsilon")


@dataclass(frozen=True)
class VDNConfig:
    """VDN / IQL hyper-parameters (``PARAMS.md`` section 2 where it speaks). Validated.

    ``total_timesteps`` counts twin steps; ``num_updates = total_timesteps // (num_envs *
    num_steps)``; ``learning_starts`` twin steps fill the buffer before any gradient step.
    ``buffer_size`` and ``batch_size`` count chunks of ``num_steps`` steps. Epsilon decays
    linearly from ``eps_start`` to ``eps_finish`` over the first ``eps_decay`` fraction of the
    updates. ``tau`` = 1 is a hard target copy every ``target_update_interval`` updates (< 1:
    Polyak averaging at that period). ``info_keys``: ``info`` entries whose per-update mean is
    reported.
    """

    mixer: str = "vdn"
    num_envs: int = 8
    num_steps: int = 50
    total_timesteps: int = 40_000
    learning_starts: int = 0
    buffer_size: int = 256
    batch_size: int = 16
    num_epochs: int = 4
    lr: float = 1e-4
    gamma: float = 0.2
    eps_start: float = 1.0
    eps_finish: float = 0.05
    eps_decay: float = 0.5
    target_update_interval: int = 5
    tau: float = 1.0
    double_q: bool = True
    dueling: bool = False
    hidden_size: int = 128
    burn_in: int = 0
    max_grad_norm: float = 10.0
    reward_scale: float = 1.0
    info_keys: tuple[str, ...] = ()

    def __post_init__(self):
        check_choice("mixer", self.mixer, MIXERS)
        check_int("num_envs", self.num_envs, lo=1)
        check_int("num_steps", self.num_steps, lo=1)
        check_int("total_timesteps", self.total_timesteps, lo=self.num_envs * self.num_steps)
        check_int("learning_starts", self.learning_starts, lo=0,
                  hi=self.total_timesteps - self.num_envs * self.num_steps)
        check_int("buffer_size", self.buffer_size, lo=self.num_envs)
        check_int("batch_size", self.batch_size, lo=1)
        check_int("num_epochs", self.num_epochs, lo=1)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("eps_start", self.eps_start, 0.0, 1.0)
        check_float("eps_finish", self.eps_finish, 0.0, 1.0)
        check_float("eps_decay", self.eps_decay, 0.0, 1.0, lo_open=True)
        check_int("target_update_interval", self.target_update_interval, lo=1)
        check_float("tau", self.tau, 0.0, 1.0, lo_open=True)
        for name in ("double_q", "dueling"):
            check_bool(name, getattr(self, name))
        check_int("hidden_size", self.hidden_size, lo=1)
        check_int("burn_in", self.burn_in, lo=0, hi=self.num_steps - 1)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, lo_open=True)
        check_float("reward_scale", self.reward_scale, 0.0, lo_open=True)
        object.__setattr__(self, "info_keys",
                           common.validate_info_keys(self.info_keys, METRIC_NAMES))

    @property
    def num_updates(self) -> int:
        """Updates in a run: ``total_timesteps // (num_envs * num_steps)`` (remainder dropped)."""
        return self.total_timesteps // (self.num_envs * self.num_steps)

    @property
    def warmup_updates(self) -> int:
        """Updates that only collect (``learning_starts`` twin steps, rounded up)."""
        per = self.num_envs * self.num_steps
        return min(-(-self.learning_starts // per), self.num_updates - 1)


# ------------------------------------------------------------------------------ network
class RecurrentQNetwork(nn.Module):
    """``Dense(hidden) + ReLU -> GRU -> QHead`` for every agent, parameters shared.

    ``__call__(h [B, A, H], feats [T, B, A, D], reset [T, B], mask [T, B, A, F, n] | None)
    -> (h_T [B, A, H], y [T, B, A, H], q [T, B, A, F, n])``; ``y[t]`` is the GRU state after
    step ``t``. :meth:`step_from` runs one GRU step from given states with no reset (the true
    next observation of each step, continued from that step's state).
    """

    hidden_size: int
    q_shape: tuple[int, int]
    dueling: bool = False

    def setup(self):
        self.embed = nn.Dense(self.hidden_size, kernel_init=orthogonal(np.sqrt(2.0)))
        self.gru = ResetGRU(self.hidden_size)
        self.head = QHead(self.q_shape, self.dueling)

    def __call__(self, h, feats, reset, mask=None):
        h, y = self.gru(h, (nn.relu(self.embed(feats)), reset))
        return h, y, self.head(y, mask)

    def step_from(self, y, feats, mask=None):
        """``y [..., A, H]``, ``feats [..., A, D]`` -> ``q [..., A, F, n]`` (one step, no reset)."""
        lead = y.shape[:-2]
        y = y.reshape(-1, *y.shape[-2:])
        x = feats.reshape(1, -1, *feats.shape[-2:])
        reset = jnp.zeros(x.shape[:2], bool)
        _, y1 = self.gru(y, (nn.relu(self.embed(x)), reset))
        y1 = y1[0].reshape(*lead, *y1.shape[-2:])
        return self.head(y1, mask)


# ------------------------------------------------------------------------------ actions
class Factored(NamedTuple):
    """Static description of the factored action: ``F`` factors, ``n`` values at most,
    ``valid [F, n]`` (value < nvec[f]), ``flat``: the env's space is ``Discrete`` (action
    ``[...]`` rather than ``[..., F]``)."""

    num_factors: int
    num_values: int
    valid: np.ndarray
    flat: bool


def action_factors(env: Environment, params) -> Factored:
    """The :class:`Factored` form of ``env``'s action space; ``TypeError`` for any space but
    ``Discrete`` (shape ``()``) and one-dimensional ``MultiDiscrete``."""
    space = env.action_space(params)
    spec = ActionSpec.from_space(space, learner="VDN/IQL")
    if spec.kind == "discrete":
        return Factored(1, spec.nvec[0], np.ones((1, spec.nvec[0]), bool), True)
    if spec.kind == "multi_discrete" and len(spec.shape) == 1:
        n = max(spec.nvec)
        valid = np.arange(n)[None, :] < np.asarray(spec.nvec)[:, None]
        return Factored(len(spec.nvec), n, valid, False)
    raise TypeError(
        f"VDN/IQL accept Discrete and one-dimensional MultiDiscrete action spaces, got "
        f"{type(space).__name__} of shape {space.shape}"
    )


def factor_mask(fac: Factored, action_mask: jax.Array | None, lead: tuple[int, ...]):
    """The env's mask as ``[*lead, F, n]`` bool (``[..., n]`` for Discrete, ``[..., F, n]``
    for MultiDiscrete, None = all legal), with values beyond a factor's size illegal."""
    valid = jnp.asarray(fac.valid)
    if action_mask is None:
        return jnp.broadcast_to(valid, (*lead, *fac.valid.shape))
    mask = action_mask[..., None, :] if fac.flat else action_mask
    return mask & valid


def greedy(q: jax.Array, mask: jax.Array) -> jax.Array:
    """Per-factor legal argmax: ``q, mask [..., F, n]`` -> int32 ``[..., F]``."""
    return jnp.argmax(jnp.where(mask, q, MASKED_Q), axis=-1).astype(jnp.int32)


def epsilon_greedy(key: jax.Array, q: jax.Array, mask: jax.Array, epsilon) -> jax.Array:
    """Per agent: with probability ``epsilon`` a uniformly random legal value of every factor,
    else :func:`greedy`. ``q, mask [..., F, n]`` -> int32 ``[..., F]``."""
    k_eps, k_rand = jax.random.split(key)
    noise = jax.random.uniform(k_rand, q.shape)
    rand = jnp.argmax(jnp.where(mask, noise, -1.0), axis=-1).astype(jnp.int32)
    explore = jax.random.uniform(k_eps, q.shape[:-2]) < epsilon
    return jnp.where(explore[..., None], rand, greedy(q, mask))


def chosen_q(q: jax.Array, action: jax.Array) -> jax.Array:
    """Q of a joint action = sum over factors: ``q [..., F, n]``, ``action [..., F]`` ->
    ``[...]``."""
    return jnp.take_along_axis(q, action[..., None], axis=-1)[..., 0].sum(-1)


def td_targets(reward, terminated, q_next_online, q_next_target, next_mask, gamma: float,
               double_q: bool = True) -> jax.Array:
    """Per-agent bootstrap terms and IQL targets ``[..., A]``.

    ``reward [..., A]`` (IQL: local) , ``terminated [..., A]`` bool, ``q_next_* [..., A, F, n]``,
    ``next_mask [..., A, F, n]``. Returns ``(boot, target)``: ``boot = (1 - term) *
    Q_target(s', a*)`` with ``a* = argmax Q_online(s')`` (double Q) or ``argmax Q_target(s')``,
    and ``target = reward + gamma * boot``. VDN sums ``boot`` over live agents instead.
    """
    a_star = greedy(q_next_online if double_q else q_next_target, next_mask)
    boot = (1.0 - terminated.astype(jnp.float32)) * chosen_q(q_next_target, a_star)
    return boot, reward + gamma * boot


def vdn_targets(team_reward, terminated, live, q_next_online, q_next_target, next_mask,
                gamma: float, double_q: bool = True) -> jax.Array:
    """VDN targets ``[...]``: ``team_reward [...] + gamma * sum_{live m} boot_m`` (see
    :func:`td_targets` for ``boot``; ``live [..., A]`` bool)."""
    boot, _ = td_targets(jnp.zeros_like(terminated, jnp.float32), terminated, q_next_online,
                         q_next_target, next_mask, gamma, double_q)
    return team_reward + gamma * jnp.where(live, boot, 0.0).sum(-1)


def _pack(mask: jax.Array) -> jax.Array:
    """``[..., F, n]`` bool -> ``[..., ceil(F n / 8)]`` uint8 (8x smaller in the buffer)."""
    return jnp.packbits(mask.reshape(*mask.shape[:-2], -1), axis=-1)


def _unpack(packed: jax.Array, fac: Factored) -> jax.Array:
    size = fac.num_factors * fac.num_values
    bits = jnp.unpackbits(packed, axis=-1, count=size).astype(bool)
    return bits.reshape(*packed.shape[:-1], fac.num_factors, fac.num_values)


# ------------------------------------------------------------------------------ training
class Chunk(NamedTuple):
    """One replay item: ``num_steps`` steps of one twin (leading ``[T]``; ``[B, T]`` sampled).

    ``feats [T, A, D]`` f32, ``mask [T, A, P]`` uint8 (packed), ``first [T]`` bool,
    ``action [T, A, F]`` int32, ``reward [T, A]`` f32 (VDN: the team reward on every agent),
    ``terminated [T, A]`` bool, ``live [T, A]`` bool, ``next_feats [T, A, D]``,
    ``next_mask [T, A, P]`` (the true next observation).
    """

    feats: jax.Array
    mask: jax.Array
    first: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    live: jax.Array
    next_feats: jax.Array
    next_mask: jax.Array


class TrainState(NamedTuple):
    """The carry of the training scan (what ``train`` returns first).

    ``params``/``target_params``: online and target network parameters; ``opt_state``;
    ``buffer``: :class:`~dtwin_jax.learners.buffer.FlatBufferState` of :class:`Chunk`;
    ``collector``: twins and the acting GRU state (``hidden [E, A, H]``); ``last_return``:
    mean return of the latest episodes completed (NaN before); ``key``.
    """

    params: Any
    target_params: Any
    opt_state: Any
    buffer: buffer.FlatBufferState
    collector: Collector
    last_return: jax.Array
    key: jax.Array


def make_network(config: VDNConfig, env: Environment, params=None) -> RecurrentQNetwork:
    """The shared Q-network of ``config`` for ``env`` (``TypeError`` for unaccepted spaces)."""
    params = env.default_params if params is None else params
    fac = action_factors(env, params)
    return RecurrentQNetwork(config.hidden_size, (fac.num_factors, fac.num_values),
                             config.dueling)


def _parts(env: Environment, env_params, config: VDNConfig, batched_params: bool,
           progress: bool) -> tuple[Callable, Callable]:
    """``(init(key, env_params=None) -> TrainState, update(state, i, learn, env_params=None) ->
    (state, metrics))`` of a VDN or IQL run: the network, optimiser, buffer and twins made,
    and one update (collect ``num_steps`` steps; with ``learn``, a static bool, then the
    gradient steps). Shared by :func:`make_train` and
    :func:`dtwin_jax.chunking.make_train_chunked`; see :func:`make_train` for the arguments
    and the metrics. ``env_params`` (a batch of the same structure and ``[num_envs]`` axis)
    replaces the one given here for that call.
    """
    vdn = config.mixer == "vdn"
    vec = common.make_vec_env(env, config.num_envs)
    params, one_params = common.twin_batch(vec, env_params, batched_params)
    fac = action_factors(env, one_params)
    network = make_network(config, env, one_params)
    info_agent_keys = common.check_info_keys(vec, params, config.info_keys)
    twin_keys = ("team_reward",) if vdn else ()
    if vdn:
        missing = common.check_info_keys(vec, params, ("team_reward",))
        if not isinstance(env, MultiAgentEnv) or missing:
            raise ValueError("mixer='vdn' needs a multi-agent env with a scalar "
                             "info['team_reward']; use mixer='iql'")
    multi = vec.multi
    num_agents = env.num_agents if multi else 1
    num_updates = config.num_updates
    t_len, batch = config.num_steps, config.batch_size
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                     optax.adam(config.lr, eps=1e-5))
    decay_updates = max(1, round(config.eps_decay * num_updates))
    bar = ProgressBar(num_updates, desc=f"{config.mixer.upper()} {env.name}") if progress else None

    def epsilon_at(i):
        frac = jnp.minimum(i / decay_updates, 1.0)
        return config.eps_start + frac * (config.eps_finish - config.eps_start)

    def masks_of(view):
        return factor_mask(fac, view.action_mask, view.live.shape)

    def to_env(action):
        return action[..., 0] if fac.flat else action

    def rollout(state: TrainState, key, epsilon, env_params):
        net_params = state.params

        def policy(k, view, first, hidden):
            mask = masks_of(view)
            hidden, _, q = network.apply(net_params, hidden, view.features[None], first[None],
                                         mask[None])
            action = epsilon_greedy(k, q[0], mask, epsilon)
            return action, to_env(action), {}, hidden

        def step(collector, k):
            return common.env_step(vec, env_params, policy, collector, k, config.info_keys,
                                   info_agent_keys, twin_keys)

        collector, (traj, stats) = jax.lax.scan(step, state.collector,
                                                jax.random.split(key, t_len))
        reward = traj.reward
        if vdn:
            team = stats["per_twin"]["team_reward"].astype(jnp.float32)  # [T, E]
            reward = jnp.broadcast_to(team[..., None], reward.shape)
        chunk = Chunk(traj.view.features, _pack(masks_of(traj.view)), traj.first, traj.action,
                      reward, traj.terminated, traj.view.live, traj.next_view.features,
                      _pack(masks_of(traj.next_view)))
        chunk = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), chunk)  # [E, T, ...]
        return state._replace(collector=collector,
                              buffer=buffer.flat_add(state.buffer, chunk)), (traj, stats)

    def loss_fn(net_params, target_params, b: Chunk):
        # time-major: [T, B, ...]
        b = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), b)
        mask, next_mask = _unpack(b.mask, fac), _unpack(b.next_mask, fac)
        h0 = ResetGRU.initial_state((batch, num_agents), config.hidden_size)
        _, y, q = network.apply(net_params, h0, b.feats, b.first, mask)
        q_next = network.apply(net_params, y, b.next_feats, next_mask, method="step_from")
        _, y_tgt, _ = network.apply(target_params, h0, b.feats, b.first, mask)
        q_next_tgt = network.apply(target_params, y_tgt, b.next_feats, next_mask,
                                   method="step_from")
        q_next, q_next_tgt = jax.lax.stop_gradient((q_next, q_next_tgt))
        q_taken = chosen_q(q, b.action)  # [T, B, A]
        steps = jnp.arange(t_len)[:, None]
        warm = (steps >= config.burn_in) | (jnp.cumsum(b.first, axis=0) > 0)  # [T, B]
        reward = b.reward * config.reward_scale
        if vdn:
            q_tot = jnp.where(b.live, q_taken, 0.0).sum(-1)
            target = vdn_targets(reward[..., 0], b.terminated, b.live, q_next, q_next_tgt,
                                 next_mask, config.gamma, config.double_q)
            valid = warm & b.live.any(-1)
            err, q_mean = q_tot - target, masked_mean(q_tot, valid)
        else:
            _, target = td_targets(reward, b.terminated, q_next, q_next_tgt, next_mask,
                                   config.gamma, config.double_q)
            valid = warm[..., None] & b.live
            err, q_mean = q_taken - target, masked_mean(q_taken, valid)
        loss = masked_mean(jnp.square(err), valid)
        return loss, q_mean

    def grad_step(carry, key):
        net_params, opt_state, target_params, buf = carry
        sample = buffer.flat_sample(buf, key, batch)
        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            net_params, target_params, sample)
        updates, opt_state = tx.update(grads, opt_state, net_params)
        return (optax.apply_updates(net_params, updates), opt_state, target_params, buf), (
            loss, q_mean)

    def update(state: TrainState, i, learn: bool, env_params=None):
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        epsilon = epsilon_at(i)
        state, (traj, stats) = rollout(state, k_roll, epsilon,
                                       params if env_params is None else env_params)
        if learn:
            (net_params, opt_state, _, _), (losses, qs) = jax.lax.scan(
                grad_step, (state.params, state.opt_state, state.target_params, state.buffer),
                jax.random.split(k_learn, config.num_epochs))
            refresh = (i + 1) % config.target_update_interval == 0
            target = jax.tree.map(
                lambda o, t: jnp.where(refresh, config.tau * o + (1.0 - config.tau) * t, t),
                net_params, state.target_params)
            state = state._replace(params=net_params, opt_state=opt_state, target_params=target)
            loss, q_mean = losses.mean(), qs.mean()
        else:
            loss = q_mean = jnp.float32(jnp.nan)
        episodes, last_return = common.episode_stats(stats, state.last_return)
        if vdn:
            reward = stats["per_twin"]["team_reward"].astype(jnp.float32).mean()
        else:
            reward = masked_mean(traj.reward, traj.view.live)
        metrics = {
            "reward": reward,
            "episode_return": last_return,
            "episodes": episodes,
            "loss": loss,
            "q_value": q_mean,
            "epsilon": jnp.float32(epsilon),
        }
        metrics.update({k: stats[k].mean() for k in config.info_keys})
        if bar is not None:
            bar.update(i, episode_return=last_return)
        return state._replace(last_return=last_return, key=key), metrics

    def init(key: chex.PRNGKey, env_params=None) -> TrainState:
        key, k_net, k_reset = jax.random.split(key, 3)
        hidden = ResetGRU.initial_state((config.num_envs, num_agents), config.hidden_size)
        collector = common.init_collector(vec, k_reset, params if env_params is None
                                          else env_params, hidden)
        view = common.agent_view(collector.obs, multi)
        mask = masks_of(view)
        net_params = network.init(k_net, hidden, view.features[None], collector.first[None],
                                  mask[None])
        example = Chunk(
            feats=jnp.zeros((t_len, *view.features.shape[1:]), jnp.float32),
            mask=jnp.zeros((t_len, *_pack(mask).shape[1:]), jnp.uint8),
            first=jnp.zeros((t_len,), bool),
            action=jnp.zeros((t_len, num_agents, fac.num_factors), jnp.int32),
            reward=jnp.zeros((t_len, num_agents), jnp.float32),
            terminated=jnp.zeros((t_len, num_agents), bool),
            live=jnp.zeros((t_len, num_agents), bool),
            next_feats=jnp.zeros((t_len, *view.features.shape[1:]), jnp.float32),
            next_mask=jnp.zeros((t_len, *_pack(mask).shape[1:]), jnp.uint8),
        )
        return TrainState(net_params, net_params, tx.init(net_params),
                          buffer.flat_init(example, config.buffer_size), collector,
                          jnp.float32(jnp.nan), key)

    return init, update


def make_train(
    env: Environment,
    env_params=None,
    config: VDNConfig | None = None,
    progress: bool = False,
    batched_params: bool = False,
) -> Callable[[chex.PRNGKey], tuple[TrainState, dict]]:
    """Build ``train(key) -> (TrainState, metrics)``: a full VDN or IQL run, jit/vmap-able.

    ``env_params``: one params struct for all twins (default ``env.default_params``), or with
    ``batched_params=True`` a struct whose leaves carry a leading ``[num_envs]`` axis
    (heterogeneous twins; :func:`dtwin_jax.parallel.train_sharded` passes one so).
    ``metrics`` maps :data:`METRIC_NAMES` and ``config.info_keys`` to ``[num_updates]``
    float32: ``reward`` (mean reward the learner trains on: team reward per twin-step for VDN,
    local reward per live agent-step for IQL), ``episode_return`` (mean return of the episodes
    completed in the update - the *team* return ``sum_t info["team_reward"]`` whenever the env
    reports one, for VDN and IQL alike, so the two compare on the same objective; carried over
    when none completed, NaN before the first), ``episodes``, ``loss`` and ``q_value`` (mean
    over the update's gradient steps of the TD loss and of the Q of the taken actions, per
    agent for IQL and ``Q_tot`` for VDN; NaN during warm-up), ``epsilon``. ``progress=True``
    shows a tqdm bar over updates.
    """
    config = VDNConfig() if config is None else config
    init, update = _parts(env, env_params, config, batched_params, progress)
    warmup = config.warmup_updates

    def train(key: chex.PRNGKey) -> tuple[TrainState, dict]:
        state = init(key)
        idx = jnp.arange(config.num_updates)
        state, m_warm = jax.lax.scan(lambda s, i: update(s, i, False), state, idx[:warmup])
        state, m_learn = jax.lax.scan(lambda s, i: update(s, i, True), state, idx[warmup:])
        return state, jax.tree.map(lambda a, b: jnp.concatenate([a, b]), m_warm, m_learn)

    return train


def make_act(config: VDNConfig, env: Environment, env_params=None):
    """``act(params, obs, hidden, first, key, epsilon=0.0) -> (action, hidden)`` for ONE twin.

    ``params``: network parameters (``TrainState.params``); ``obs``: one twin's observation;
    ``hidden [A, H]`` the GRU state (:func:`initial_hidden`), restarted where ``first`` (a
    bool scalar: ``obs`` starts an episode); returns the env action (legal: masked
    epsilon-greedy, greedy at ``epsilon = 0``) and the next GRU state. ``jax.vmap`` it over
    twins.
    """
    env_params = env.default_params if env_params is None else env_params
    fac = action_factors(env, env_params)
    network = make_network(config, env, env_params)
    multi = isinstance(env, MultiAgentEnv)

    def act(params, obs, hidden, first, key, epsilon=0.0):
        view = common.agent_view(jax.tree.map(lambda x: x[None], obs), multi)
        mask = factor_mask(fac, view.action_mask, view.live.shape)
        h, _, q = network.apply(params, hidden[None], view.features[None],
                                jnp.reshape(first, (1, 1)), mask[None])
        action = epsilon_greedy(key, q[0, 0], mask[0], epsilon)
        action = action[..., 0] if fac.flat else action
        return (action if multi else action[0]), h[0]

    return act


def initial_hidden(config: VDNConfig, env: Environment) -> jax.Array:
    """A fresh acting GRU state ``[A, H]`` for one twin of ``env``."""
    num_agents = env.num_agents if isinstance(env, MultiAgentEnv) else 1
    return ResetGRU.initial_state((num_agents,), config.hidden_size)
