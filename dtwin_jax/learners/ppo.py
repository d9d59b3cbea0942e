"""Proximal Policy Optimisation (clipped surrogate, GAE), PureJaxRL-shaped, for any env of our API.

``train = make_train(env, env_params, config)`` returns ONE function of a PRNG key whose body
is a ``lax.scan`` over updates, so ``jax.jit(train)(key)`` is a whole training run and
``jax.vmap(train)(keys)`` runs many seeds. Each update collects ``num_steps`` steps of
``num_envs`` twins (a :class:`~dtwin_jax.envs.wrappers.VecEnv`), then runs ``update_epochs``
passes of ``num_minibatches`` shuffled minibatches of Adam on the PPO loss.

Multi-agent envs (:class:`~dtwin_jax.envs.base.MultiAgentEnv`) share one policy: every live
agent's transition is one sample (the agent axis is folded into the batch), and the network runs
once per step on ``[num_envs, A, D]``. Losses, advantage normalisation and metrics use only
live agents (``agent_mask``); padded agent slots contribute exactly nothing. Illegal actions
(``action_mask`` False) have probability 0. A single-agent env is treated as one agent, no mask.

Terminated vs truncated in GAE. With ``V'_t`` the value of the true next state,
``delta_t = r_t + gamma * (1 - terminated_t) * V'_t - V(s_t)`` and
``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}``, ``done = terminated | truncated``.
The true next state is ``s_{t+1}`` if the episode goes on, but on a truncation ``s_{t+1}`` is
the *reset* state of the next episode, so ``V'_t`` is then the critic's value of
``info["final_observation"]`` (the state the time limit cut off): a time limit bootstraps, a
termination does not, and neither lets the advantage trace leak into the next episode.
The extra critic pass on ``final_observation`` is skipped (``lax.cond``) on steps where no twin
truncated. An agent that is live before a step and gone after it (``agent_mask`` of the
final observation) is treated as terminated for itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from dtwin_jax._checks import check_choice, check_float, check_int
from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv
from dtwin_jax.envs.spaces import Discrete
from dtwin_jax.envs.wrappers import VecEnv
from dtwin_jax.learners.nets import ACTIVATIONS, ActorCritic, masked_categorical, masked_logits
from dtwin_jax.learners.progress import ProgressBar

#: names of the metrics every update reports (``info_keys`` entries are added under their names)
METRIC_NAMES = (
    "reward",
    "episode_return",
    "episodes",
    "total_loss",
    "value_loss",
    "actor_loss",
    "entropy",
    "approx_kl",
    "clip_frac",
)


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters (PureJaxRL defaults). Validated on construction.

    ``total_timesteps`` counts twin steps (``num_envs`` per vector step, whatever the number of
    agents); ``num_updates = total_timesteps // (num_envs * num_steps)``. ``lr`` decays linearly
    to 0 over the run when ``anneal_lr``. ``info_keys`` names entries of the env's ``info`` whose
    mean over each update is reported in the metrics (per-agent ``[A]`` entries are averaged over
    ``info["agent_mask"]`` when the env provides it).
    """

    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    info_keys: tuple[str, ...] = ()

    def __post_init__(self):
        check_int("num_envs", self.num_envs, lo=1)
        check_int("num_steps", self.num_steps, lo=1)
        check_int("update_epochs", self.update_epochs, lo=1)
        check_int("num_minibatches", self.num_minibatches, lo=1)
        check_int("total_timesteps", self.total_timesteps, lo=self.num_envs * self.num_steps)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide num_envs * num_steps = "
                f"{self.num_envs * self.num_steps}"
            )
        check_float("lr", self.lr, 0.0, lo_open=True)
        if not isinstance(self.anneal_lr, bool):
            raise TypeError(f"anneal_lr must be a bool, got {self.anneal_lr!r}")
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_float("clip_eps", self.clip_eps, 0.0, lo_open=True)
        check_float("ent_coef", self.ent_coef, 0.0)
        check_float("vf_coef", self.vf_coef, 0.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, lo_open=True)
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        for i, width in enumerate(self.hidden_sizes):
            check_int(f"hidden_sizes[{i}]", width, lo=1)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        object.__setattr__(self, "info_keys", tuple(self.info_keys))
        for key in self.info_keys:
            if not isinstance(key, str):
                raise TypeError(f"info_keys entries must be str, got {key!r}")
            if key in METRIC_NAMES:
                raise ValueError(f"info_keys entry {key!r} clashes with a metric name; "
                                 f"not allowed: {list(METRIC_NAMES)}")

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // (self.num_envs * self.num_steps)


class RunnerState(NamedTuple):
    """The carry of the training scan (what ``train`` returns first).

    ``episode_acc [E]``: return so far of each twin's running episode; ``last_return``: mean
    return of the episodes completed in the latest update that completed any (NaN before).
    """

    train_state: TrainState
    env_state: Any
    obs: Any
    episode_acc: jax.Array
    last_return: jax.Array
    key: jax.Array


class Transition(NamedTuple):
    """One vector step with the agent axis explicit: leading axes ``[E, A]`` (``[T, E, A]``)."""

    features: jax.Array  # [E, A, D] float32
    action_mask: jax.Array | None  # [E, A, N] bool, None for a single-agent env
    live: jax.Array  # [E, A] bool, agents that acted
    action: jax.Array  # [E, A] int32
    log_prob: jax.Array  # [E, A]
    value: jax.Array  # [E, A]
    reward: jax.Array  # [E, A]
    terminated: jax.Array  # [E, A] bool, per agent (twin terminated or agent vanished)
    done: jax.Array  # [E, A] bool, the advantage trace stops here
    boot_value: jax.Array  # [E, A] critic value of the final observation (0 if not truncated)


def compute_gae(
    values: jax.Array,
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates over the leading time axis (all inputs ``[T, ...]``).

    ``next_values[t]`` is the value of the true next state of step ``t`` (see module
    docstring); ``terminated`` stops bootstrapping, ``done`` stops the trace.
    Returns ``(advantages, value_targets)``, both ``[T, ...]`` float32.
    """
    not_term = 1.0 - terminated.astype(jnp.float32)
    not_done = 1.0 - done.astype(jnp.float32)
    deltas = rewards + gamma * not_term * next_values - values

    def back(adv_next, xs):
        delta, keep = xs
        adv = delta + gamma * gae_lambda * keep * adv_next
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True)
    return adv, adv + values


def _agent_view(obs, multi: bool) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    """``(features [..., A, D], action_mask [..., A, N] | None, agent_mask [..., A])``.

    ``obs`` has one leading batch axis (twins); a single-agent obs becomes one agent.
    """
    if multi:
        return obs.features.astype(jnp.float32), obs.action_mask, obs.agent_mask
    feats = jnp.reshape(obs, (obs.shape[0], 1, -1)).astype(jnp.float32)
    return feats, None, jnp.ones(feats.shape[:2], bool)


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` where ``mask`` (0 if none); masked-out entries may hold any finite value."""
    return jnp.where(mask, x, 0.0).sum() / jnp.maximum(mask.sum(), 1)


def _num_actions(env: Environment, params) -> int:
    space = env.action_space(params)
    if not isinstance(space, Discrete) or space.shape != ():
        raise TypeError(f"PPO needs a scalar Discrete action space per agent, got {space}")
    return space.n


def _network(config: PPOConfig, env: Environment, params) -> ActorCritic:
    return ActorCritic(_num_actions(env, params), config.hidden_sizes, config.activation)


def make_train(
    env: Environment,
    env_params=None,
    config: PPOConfig | None = None,
    batched_params: bool = False,
    progress: bool = False,
) -> Callable[[chex.PRNGKey], tuple[RunnerState, dict]]:
    """Build ``train(key) -> (RunnerState, metrics)``: a full PPO run, jit- and vmap-able.

    ``env_params``: one params struct broadcast to all twins (default: ``env.default_params``),
    or with ``batched_params=True`` a struct whose leaves carry a leading ``[num_envs]`` axis
    (heterogeneous twins). ``metrics`` maps :data:`METRIC_NAMES` and ``config.info_keys`` to
    ``[num_updates]`` float32 arrays: ``reward`` (mean per live agent-step), ``episode_return``
    (mean over episodes completed in the update of the per-twin return, a twin's step reward
    being its mean over live agents; carried from the previous update if none completed, NaN
    before the first), ``episodes`` (count completed), the loss terms, ``entropy``,
    ``approx_kl`` and ``clip_frac`` (means over epochs and minibatches). ``progress=True`` shows
    a tqdm bar over updates.
    """
    config = PPOConfig() if config is None else config
    env_params = env.default_params if env_params is None else env_params
    vec = VecEnv(env, config.num_envs)
    multi = isinstance(env, MultiAgentEnv)
    if batched_params:
        for leaf in jax.tree.leaves(env_params):
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != config.num_envs:
                raise ValueError(
                    f"batched env_params leaves need a leading axis of num_envs="
                    f"{config.num_envs}; got a leaf of shape {jnp.shape(leaf)}"
                )
        params = env_params
    else:
        params = vec.batch_params(env_params)
    one_params = jax.tree.map(lambda x: x[0], params)
    network = _network(config, env, one_params)
    info_agent_keys = _check_info_keys(vec, params, config, multi)

    num_updates, num_mb = config.num_updates, config.num_minibatches
    steps_per_anneal = config.update_epochs * num_mb * num_updates

    def lr_schedule(count):
        return config.lr * (1.0 - jnp.minimum(count, steps_per_anneal) / steps_per_anneal)

    tx = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(lr_schedule if config.anneal_lr else config.lr, eps=1e-5),
    )
    bar = ProgressBar(num_updates, desc=f"PPO {env.name}") if progress else None

    def env_step(runner: RunnerState, _):
        train_state = runner.train_state
        key, k_act, k_step = jax.random.split(runner.key, 3)
        feats, action_mask, live = _agent_view(runner.obs, multi)
        logits, value = network.apply(train_state.params, feats)
        pi = masked_categorical(logits, action_mask)
        action = pi.sample(seed=k_act).astype(jnp.int32)
        log_prob = pi.log_prob(action)
        obs, env_state, reward, term, trunc, info = vec.step(
            k_step, runner.env_state, action if multi else action[:, 0], params
        )
        reward = jnp.asarray(reward, jnp.float32).reshape(live.shape)
        final_feats, _, next_live = _agent_view(info["final_observation"], multi)
        boot_value = jax.lax.cond(
            trunc.any(),
            lambda: network.apply(train_state.params, final_feats, method="value"),
            lambda: jnp.zeros_like(value),
        )
        agent_term = term[:, None] | (live & ~next_live)
        done_env = term | trunc
        transition = Transition(
            feats, action_mask, live, action, log_prob, value, reward,
            agent_term, agent_term | done_env[:, None], jnp.where(trunc[:, None], boot_value, 0.0),
        )
        # episode bookkeeping: a twin's step reward is its mean over live agents
        twin_reward = jnp.where(live, reward, 0.0).sum(-1) / jnp.maximum(live.sum(-1), 1)
        episode_acc = runner.episode_acc + twin_reward
        stats = {
            "return_sum": jnp.where(done_env, episode_acc, 0.0).sum(),
            "episodes": done_env.sum().astype(jnp.float32),
        }
        for k in config.info_keys:
            x = jnp.asarray(info[k], jnp.float32)
            per_agent = k in info_agent_keys
            stats[k] = _masked_mean(x, info["agent_mask"]) if per_agent else x.mean()
        runner = RunnerState(
            train_state, env_state, obs, jnp.where(done_env, 0.0, episode_acc),
            runner.last_return, key,
        )
        return runner, (transition, stats)

    def loss_fn(net_params, mb: Transition, advantages, targets):
        logits, value = network.apply(net_params, mb.features)
        pi = masked_categorical(logits, mb.action_mask)
        live = mb.live

        def mean(x):
            return _masked_mean(x, live)

        value_clipped = mb.value + jnp.clip(value - mb.value, -config.clip_eps, config.clip_eps)
        value_loss = 0.5 * mean(
            jnp.maximum(jnp.square(value - targets), jnp.square(value_clipped - targets))
        )
        log_ratio = jnp.where(live, pi.log_prob(mb.action) - mb.log_prob, 0.0)
        ratio = jnp.exp(log_ratio)
        adv_mean = mean(advantages)
        adv_std = jnp.sqrt(mean(jnp.square(advantages - adv_mean)))
        adv = jnp.where(live, (advantages - adv_mean) / (adv_std + 1e-8), 0.0)
        clipped_ratio = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
        actor_loss = -mean(jnp.minimum(ratio * adv, clipped_ratio * adv))
        entropy = mean(pi.entropy())
        total = actor_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        aux = {
            "total_loss": total,
            "value_loss": value_loss,
            "actor_loss": actor_loss,
            "entropy": entropy,
            "approx_kl": mean((ratio - 1.0) - log_ratio),
            "clip_frac": mean((jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32)),
        }
        return total, aux

    def minibatch_step(train_state: TrainState, batch):
        grads, aux = jax.grad(loss_fn, has_aux=True)(train_state.params, *batch)
        return train_state.apply_gradients(grads=grads), aux

    def epoch(carry, _):
        train_state, key, batch = carry
        key, k_perm = jax.random.split(key)
        n = batch[1].shape[0]
        perm = jax.random.permutation(k_perm, n)
        minibatches = jax.tree.map(
            lambda x: jnp.take(x, perm, axis=0).reshape(num_mb, n // num_mb, *x.shape[1:]), batch
        )
        train_state, aux = jax.lax.scan(minibatch_step, train_state, minibatches)
        return (train_state, key, batch), aux

    def update(runner: RunnerState, i):
        runner, (traj, stats) = jax.lax.scan(env_step, runner, None, config.num_steps)
        feats, _, _ = _agent_view(runner.obs, multi)
        last_value = network.apply(runner.train_state.params, feats, method="value")
        following = jnp.concatenate([traj.value[1:], last_value[None]], axis=0)
        next_values = jnp.where(traj.done, traj.boot_value, following)
        advantages, targets = compute_gae(
            traj.value, traj.reward, next_values, traj.terminated, traj.done,
            config.gamma, config.gae_lambda,
        )
        advantages = jnp.where(traj.live, advantages, 0.0)
        targets = jnp.where(traj.live, targets, traj.value)
        needed = traj._replace(reward=None, terminated=None, done=None, boot_value=None)
        flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[3:]), (needed, advantages, targets))
        key, k_epochs = jax.random.split(runner.key)
        (train_state, _, _), aux = jax.lax.scan(
            epoch, (runner.train_state, k_epochs, flat), None, config.update_epochs
        )
        episodes = stats["episodes"].sum()
        last_return = jnp.where(
            episodes > 0, stats["return_sum"].sum() / jnp.maximum(episodes, 1), runner.last_return
        )
        metrics = {k: v.mean() for k, v in aux.items()}
        metrics["reward"] = _masked_mean(traj.reward, traj.live)
        metrics["episode_return"] = last_return
        metrics["episodes"] = episodes
        metrics.update({k: stats[k].mean() for k in config.info_keys})
        if bar is not None:
            bar.update(i, reward=metrics["reward"])
        runner = runner._replace(train_state=train_state, last_return=last_return, key=key)
        return runner, metrics

    def train(key: chex.PRNGKey) -> tuple[RunnerState, dict]:
        key, k_net, k_reset = jax.random.split(key, 3)
        obs, env_state = vec.reset(k_reset, params)
        feats, _, _ = _agent_view(obs, multi)
        train_state = TrainState.create(
            apply_fn=network.apply, params=network.init(k_net, feats), tx=tx
        )
        runner = RunnerState(
            train_state, env_state, obs, jnp.zeros(config.num_envs, jnp.float32),
            jnp.float32(jnp.nan), key,
        )
        return jax.lax.scan(update, runner, jnp.arange(num_updates))

    return train


def _check_info_keys(vec: VecEnv, params, config: PPOConfig, multi: bool) -> frozenset[str]:
    """Check ``config.info_keys`` exist in the env's info (abstractly, nothing runs).

    Returns the keys that are per-agent (``[E, A]``) and get averaged over ``info["agent_mask"]``.
    """
    if not config.info_keys:
        return frozenset()

    def one_step(key):
        obs, state = vec.reset(key, params)
        action = jnp.zeros((config.num_envs, vec.env.num_agents) if multi else config.num_envs,
                           jnp.int32)
        return vec.step(key, state, action, params)[-1]

    shapes = jax.eval_shape(one_step, jax.random.PRNGKey(0))
    missing = [k for k in config.info_keys if k not in shapes]
    if missing:
        raise ValueError(f"info_keys {missing} are not in the env's info; available: "
                         f"{sorted(shapes)}")
    if not (multi and "agent_mask" in shapes):
        return frozenset()
    agent_shape = shapes["agent_mask"].shape
    return frozenset(k for k in config.info_keys if shapes[k].shape == agent_shape)


def make_policy_fn(config: PPOConfig, env: Environment, env_params=None):
    """``act(params, obs, key, deterministic=False) -> action`` for ONE twin of ``env``.

    ``params`` are the network params (``runner_state.train_state.params``); ``obs`` one twin's
    observation (:class:`AgentObs` ``[A, ...]`` or an array); returns ``[A]`` int32 (a scalar
    for a single-agent env), legal actions only: the greedy one if ``deterministic`` (a bool,
    may be traced) else a sample. ``jax.vmap`` it for a batch of twins.
    """
    env_params = env.default_params if env_params is None else env_params
    network = _network(config, env, env_params)
    multi = isinstance(env, MultiAgentEnv)

    def act(params, obs: AgentObs | jax.Array, key: chex.PRNGKey, deterministic=False):
        if multi:
            logits, _ = network.apply(params, obs.features.astype(jnp.float32))
            logits = masked_logits(logits, obs.action_mask)
        else:
            logits, _ = network.apply(params, jnp.reshape(obs, (-1,)).astype(jnp.float32))
        greedy = jnp.argmax(logits, axis=-1)
        sampled = jax.random.categorical(key, logits)
        return jnp.where(deterministic, greedy, sampled).astype(jnp.int32)

    return act
