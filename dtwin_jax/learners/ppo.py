"""Proximal Policy Optimisation (clipped surrogate, GAE), PureJaxRL-shaped, for any env of our API.

``train = make_train(env, env_params, config)`` returns ONE function of a PRNG key whose body
is a ``lax.scan`` over updates, so ``jax.jit(train)(key)`` is a whole training run and
``jax.vmap(train)(keys)`` runs many seeds. Each update collects ``num_steps`` steps of
``num_envs`` twins (a :class:`~dtwin_jax.envs.wrappers.VecEnv`), then runs ``update_epochs``
passes of ``num_minibatches`` shuffled minibatches of Adam on the PPO loss.

Action spaces: ``Discrete`` (shape ``()``), ``MultiDiscrete`` (factored categorical with a mask
per factor), ``Box`` (tanh-squashed Gaussian onto finite bounds, or a clipped Gaussian) and
``Simplex`` (Dirichlet), single- or multi-agent; any other space raises ``TypeError``
(:func:`action_spec`). Rollouts are collected by :func:`dtwin_jax.learners.common.env_step`.

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
The critic's value of the true next state is computed for every step in one batched pass after
the rollout (no ``lax.cond``, which a batched predicate would turn into a ``select`` under a
vmap over seeds). An agent that is live before a step and gone after it (``agent_mask`` of the
final observation) is treated as terminated for itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from dtwin_jax._checks import check_bool, check_choice, check_float, check_int, check_int_tuple
from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv
from dtwin_jax.learners import common
from dtwin_jax.learners.common import Collector, masked_mean
from dtwin_jax.learners.nets import ACTIVATIONS, ActionSpec, ActorCritic, policy_distribution
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
    ``info["agent_mask"]`` when the env provides it). ``squash_box``: a ``Box`` policy is a
    tanh-squashed Gaussian mapped onto the finite bounds (else a Gaussian clipped to them).
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
    squash_box: bool = True

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
        for name in ("anneal_lr", "squash_box"):
            check_bool(name, getattr(self, name))
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_float("clip_eps", self.clip_eps, 0.0, lo_open=True)
        check_float("ent_coef", self.ent_coef, 0.0)
        check_float("vf_coef", self.vf_coef, 0.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, lo_open=True)
        object.__setattr__(self, "hidden_sizes",
                           check_int_tuple("hidden_sizes", self.hidden_sizes, lo=1))
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        object.__setattr__(self, "info_keys",
                           common.validate_info_keys(self.info_keys, METRIC_NAMES))

    @property
    def num_updates(self) -> int:
        """Updates in a run: ``total_timesteps // (num_envs * num_steps)`` (remainder dropped)."""
        return self.total_timesteps // (self.num_envs * self.num_steps)


class RunnerState(NamedTuple):
    """The carry of the training scan (what ``train`` returns first).

    ``collector``: the twins' state and current observations (:class:`common.Collector`);
    ``last_return``: mean return of the episodes completed in the latest update that completed
    any (NaN before).
    """

    train_state: TrainState
    collector: Collector
    last_return: jax.Array
    key: jax.Array


class Batch(NamedTuple):
    """The samples of one update, flattened to agent-steps ``[T * E * A, ...]``."""

    features: jax.Array  # [N, D] float32
    action_mask: jax.Array | None  # [N, *mask_shape] bool
    live: jax.Array  # [N] bool
    action: jax.Array  # [N, *raw_shape]
    log_prob: jax.Array  # [N]
    value: jax.Array  # [N]
    advantage: jax.Array  # [N]
    target: jax.Array  # [N]


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


def action_spec(config: PPOConfig, env: Environment, params) -> ActionSpec:
    """The :class:`ActionSpec` PPO uses for ``env``: Discrete (shape ``()``), MultiDiscrete,
    Box and Simplex actions are accepted; any other space raises ``TypeError``."""
    return ActionSpec.from_space(env.action_space(params), config.squash_box, learner="PPO")


def _network(config: PPOConfig, env: Environment, params) -> ActorCritic:
    spec = action_spec(config, env, params)
    return ActorCritic(hidden_sizes=config.hidden_sizes, activation=config.activation, spec=spec)


def _parts(
    env: Environment,
    env_params,
    config: PPOConfig,
    batched_params: bool,
    progress: bool,
) -> tuple[Callable[[chex.PRNGKey], RunnerState], Callable]:
    """``(init(key) -> RunnerState, update(runner, i) -> (runner, metrics))`` of a PPO run.

    Shared by :func:`make_train`, :func:`make_train_chunks` and
    :func:`dtwin_jax.chunking.make_train_chunked`; see :func:`make_train` for the arguments and
    the metrics. ``init`` and ``update`` take an optional ``env_params`` (a batch of the same
    structure and ``[num_envs]`` axis) that replaces the one given here for that call.
    """
    vec = common.make_vec_env(env, config.num_envs)
    params, one_params = common.twin_batch(vec, env_params, batched_params)
    spec = action_spec(config, env, one_params)
    network = _network(config, env, one_params)
    info_agent_keys = common.check_info_keys(vec, params, config.info_keys)

    num_updates, num_mb = config.num_updates, config.num_minibatches
    steps_per_anneal = config.update_epochs * num_mb * num_updates

    def lr_schedule(count):
        return config.lr * (1.0 - jnp.minimum(count, steps_per_anneal) / steps_per_anneal)

    tx = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(lr_schedule if config.anneal_lr else config.lr, eps=1e-5),
    )
    bar = ProgressBar(num_updates, desc=f"PPO {env.name}") if progress else None

    def rollout_step(runner: RunnerState, key, env_params):
        net_params = runner.train_state.params

        def policy(k, view, first, hidden):
            head, value = network.apply(net_params, view.features)
            pi = policy_distribution(spec, head, view.action_mask)
            raw = pi.sample(k)
            return raw, pi.env_action(raw), {"log_prob": pi.log_prob(raw), "value": value}, hidden

        collector, out = common.env_step(vec, env_params, policy, runner.collector, key,
                                         config.info_keys, info_agent_keys)
        return runner._replace(collector=collector), out

    def loss_fn(net_params, mb: Batch):
        head, value = network.apply(net_params, mb.features)
        pi = policy_distribution(spec, head, mb.action_mask)
        live = mb.live

        def mean(x):
            return masked_mean(x, live)

        value_clipped = mb.value + jnp.clip(value - mb.value, -config.clip_eps, config.clip_eps)
        value_loss = 0.5 * mean(
            jnp.maximum(jnp.square(value - mb.target), jnp.square(value_clipped - mb.target))
        )
        log_ratio = jnp.where(live, pi.log_prob(mb.action) - mb.log_prob, 0.0)
        ratio = jnp.exp(log_ratio)
        adv_mean = mean(mb.advantage)
        adv_std = jnp.sqrt(mean(jnp.square(mb.advantage - adv_mean)))
        adv = jnp.where(live, (mb.advantage - adv_mean) / (adv_std + 1e-8), 0.0)
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

    def minibatch_step(train_state: TrainState, mb: Batch):
        grads, aux = jax.grad(loss_fn, has_aux=True)(train_state.params, mb)
        return train_state.apply_gradients(grads=grads), aux

    def epoch(carry, _):
        train_state, key, batch = carry
        key, k_perm = jax.random.split(key)
        n = batch.live.shape[0]
        perm = jax.random.permutation(k_perm, n)
        minibatches = jax.tree.map(
            lambda x: jnp.take(x, perm, axis=0).reshape(num_mb, n // num_mb, *x.shape[1:]), batch
        )
        train_state, aux = jax.lax.scan(minibatch_step, train_state, minibatches)
        return (train_state, key, batch), aux

    def update(runner: RunnerState, i, env_params=None):
        env_params = params if env_params is None else env_params
        key, k_roll, k_epochs = jax.random.split(runner.key, 3)
        runner, (traj, stats) = jax.lax.scan(
            lambda r, k: rollout_step(r, k, env_params), runner,
            jax.random.split(k_roll, config.num_steps))
        # value of the true next state of every step (the final observation where an episode
        # ended): one batched critic pass instead of a per-step branch
        next_values = network.apply(runner.train_state.params, traj.next_view.features,
                                    method="value")
        live = traj.view.live
        advantages, targets = compute_gae(
            traj.extras["value"], traj.reward, next_values, traj.terminated, traj.done,
            config.gamma, config.gae_lambda,
        )
        batch = Batch(traj.view.features, traj.view.action_mask, live, traj.action,
                      traj.extras["log_prob"], traj.extras["value"],
                      jnp.where(live, advantages, 0.0),
                      jnp.where(live, targets, traj.extras["value"]))
        flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[3:]), batch)
        (train_state, _, _), aux = jax.lax.scan(
            epoch, (runner.train_state, k_epochs, flat), None, config.update_epochs
        )
        episodes, last_return = common.episode_stats(stats, runner.last_return)
        metrics = {k: v.mean() for k, v in aux.items()}
        metrics["reward"] = masked_mean(traj.reward, live)
        metrics["episode_return"] = last_return
        metrics["episodes"] = episodes
        metrics.update({k: stats[k].mean() for k in config.info_keys})
        if bar is not None:
            bar.update(i, reward=metrics["reward"])
        runner = runner._replace(train_state=train_state, last_return=last_return, key=key)
        return runner, metrics

    def init(key: chex.PRNGKey, env_params=None) -> RunnerState:
        key, k_net, k_reset = jax.random.split(key, 3)
        collector = common.init_collector(vec, k_reset, params if env_params is None
                                          else env_params)
        feats = common.agent_view(collector.obs, vec.multi).features
        train_state = TrainState.create(
            apply_fn=network.apply, params=network.init(k_net, feats), tx=tx
        )
        return RunnerState(train_state, collector, jnp.float32(jnp.nan), key)

    return init, update


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
    being its mean over live agents, or ``info["team_reward"]``; carried from the previous
    update if none completed, NaN before the first), ``episodes`` (count completed), the loss
    terms, ``entropy``, ``approx_kl`` and ``clip_frac`` (means over epochs and minibatches).
    ``progress=True`` shows a tqdm bar over updates.
    """
    config = PPOConfig() if config is None else config
    init, update = _parts(env, env_params, config, batched_params, progress)

    def train(key: chex.PRNGKey) -> tuple[RunnerState, dict]:
        return jax.lax.scan(update, init(key), jnp.arange(config.num_updates))

    return train


def make_train_chunks(
    env: Environment,
    env_params=None,
    config: PPOConfig | None = None,
    batched_params: bool = False,
) -> tuple[Callable[[chex.PRNGKey], RunnerState], Callable[..., tuple[RunnerState, dict]]]:
    """The run of :func:`make_train` in pieces: ``(init, advance)``, for checkpoints and resume.

    ``init(key) -> RunnerState`` is the state ``train(key)`` starts its scan from, and
    ``advance(runner, start, length) -> (runner, metrics)`` runs updates ``start .. start +
    length - 1`` (``length`` a static Python int, ``start`` may be traced; metrics
    ``[length]`` per name, as :func:`make_train`'s). An update's index only feeds the
    progress bar (the learning-rate schedule counts optimiser steps, kept in the state), so
    ``init`` then ``advance`` over consecutive chunks covering ``config.num_updates`` computes
    what ``train(key)`` computes (equal to float tolerance; chunks of one fixed length give
    bit-identical runners whether or not the run was stopped and restored in between). Jit
    ``advance`` with ``static_argnums=2``. No progress bar (the caller reports per chunk).
    """
    config = PPOConfig() if config is None else config
    init, update = _parts(env, env_params, config, batched_params, False)

    def advance(runner: RunnerState, start, length: int) -> tuple[RunnerState, dict]:
        return jax.lax.scan(update, runner, start + jnp.arange(length))

    return init, advance


def make_policy_fn(config: PPOConfig, env: Environment, env_params=None):
    """``act(params, obs, key, deterministic=False) -> action`` for ONE twin of ``env``.

    ``params`` are the network params (``runner_state.train_state.params``); ``obs`` one twin's
    observation (:class:`AgentObs` ``[A, ...]`` or an array); returns the env action
    ``[A, *action_shape]`` (without the agent axis for a single-agent env), legal actions only:
    the distribution's mode if ``deterministic`` (a bool, may be traced) else a sample.
    ``jax.vmap`` it for a batch of twins.
    """
    env_params = env.default_params if env_params is None else env_params
    spec = action_spec(config, env, env_params)
    network = _network(config, env, env_params)
    multi = isinstance(env, MultiAgentEnv)

    def act(params, obs: AgentObs | jax.Array, key: chex.PRNGKey, deterministic=False):
        batched = jax.tree.map(lambda x: x[None], obs)
        view = common.agent_view(batched, multi)
        head, _ = network.apply(params, view.features[0])
        pi = policy_distribution(spec, head, None if view.action_mask is None
                                 else view.action_mask[0])
        sampled = pi.sample(key)
        raw = jax.tree.map(lambda m, s: jnp.where(deterministic, m, s), pi.mode(), sampled)
        action = pi.env_action(raw)
        return action if multi else action[0]

    return act
