"""Shared Flax (linen) modules for the learners: an MLP torso, actor-critic heads, masked policy.

Every module acts on the last axis and broadcasts over any leading axes, so one call evaluates
all agents of all twins of a batch (``[..., D] -> [..., N]``) in a single fused forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax._checks import check_choice

#: activations accepted by the ``activation`` fields of the learners' configs
ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}

#: logit given to illegal actions: finite (no NaN in softmax or its gradient) and
#: small enough that ``exp`` underflows to exactly 0 against any legal logit
MASKED_LOGIT = -1e9


def activation_fn(name: str):
    """The activation function called ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[check_choice("activation", name, tuple(ACTIVATIONS))]


class MLP(nn.Module):
    """Dense layers of widths ``hidden_sizes``, each followed by ``activation``.

    Orthogonal init with gain sqrt(2) and zero biases (the PPO convention).
    ``[..., D] -> [..., hidden_sizes[-1]]`` float32 (``[..., D]`` unchanged if no layers).
    """

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        x = jnp.asarray(x, jnp.float32)
        for width in self.hidden_sizes:
            x = act(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)))(x))
        return x


class ActorCritic(nn.Module):
    """Separate actor and critic MLP torsos with a logits head and a scalar value head.

    ``[..., D] -> (logits [..., num_actions], value [...])``. Head inits: orthogonal with gain
    0.01 (near-uniform initial policy) for the actor and 1.0 for the critic.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    def setup(self):
        self.actor_torso = MLP(self.hidden_sizes, self.activation)
        self.actor_head = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))
        self.critic_torso = MLP(self.hidden_sizes, self.activation)
        self.critic_head = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.actor_head(self.actor_torso(x)), self.value(x)

    def value(self, x: jax.Array) -> jax.Array:
        """The critic alone: ``[..., D] -> [...]`` (``apply(..., method="value")``)."""
        return self.critic_head(self.critic_torso(x))[..., 0]


def masked_logits(logits: jax.Array, action_mask: jax.Array | None) -> jax.Array:
    """``logits`` with illegal actions (``action_mask`` False) set to :data:`MASKED_LOGIT`."""
    if action_mask is None:
        return logits
    return jnp.where(action_mask, logits, MASKED_LOGIT)


def masked_categorical(
    logits: jax.Array, action_mask: jax.Array | None = None
) -> distrax.Categorical:
    """Categorical over the legal actions only: ``logits [..., N]``, ``action_mask [..., N]`` bool.

    Illegal actions have probability exactly 0, are never sampled, and add nothing to the
    entropy (``0 * log 0`` is taken as 0). A row with no legal action becomes uniform.
    """
    return distrax.Categorical(logits=masked_logits(logits, action_mask))
