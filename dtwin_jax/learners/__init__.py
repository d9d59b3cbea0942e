"""Learners that train inside the jitted twins: PPO (and, next, the DQN and VDN/IQL families),
with the shared collector (:mod:`.common`), networks (:mod:`.nets`) and replay buffers
(:mod:`.buffer`)."""

from dtwin_jax.learners import cql, distill, dqn  # noqa: F401  (DQN family, CQL, distillation)
from dtwin_jax.learners.common import AgentView, Collector, Step, agent_view, env_step, masked_mean
from dtwin_jax.learners.nets import (
    MLP,
    ActionSpec,
    ActorCritic,
    QHead,
    ResetGRU,
    masked_categorical,
    policy_distribution,
)
from dtwin_jax.learners.ppo import PPOConfig, RunnerState, compute_gae, make_policy_fn, make_train
from dtwin_jax.learners.vdn import VDNConfig

__all__ = [
    "MLP",
    "ActionSpec",
    "ActorCritic",
    "AgentView",
    "Collector",
    "PPOConfig",
    "QHead",
    "ResetGRU",
    "RunnerState",
    "Step",
    "VDNConfig",
    "agent_view",
    "compute_gae",
    "env_step",
    "make_policy_fn",
    "make_train",
    "masked_categorical",
    "masked_mean",
    "policy_distribution",
]
