"""Shared Flax (linen) modules and action distributions for the learners.

* :class:`MLP` torso and :class:`ActorCritic` (policy head for any :class:`ActionSpec` plus a
  value head);
* :class:`ResetGRU`: a GRU scanned over time (``[T, B, D]``) whose hidden state restarts
  where a ``reset`` flag is set (episode starts);
* :class:`QHead` (plain or dueling, per factor) and :func:`masked_q` / :func:`greedy_action`;
* action distributions with masks: :func:`policy_distribution` builds, from a head's output,
  a masked categorical (``Discrete``), a factored masked categorical (``MultiDiscrete``), a
  Gaussian or tanh-squashed Gaussian (``Box``) or a Dirichlet (``Simplex``).

Every module acts on the last axis and broadcasts over leading axes, so one call evaluates
all agents of all twins of a batch (``[..., D] -> [..., N]``) in a single fused forward.

Weights use :func:`orthogonal`, an orthogonal initialiser written with matrix products only:
``flax.linen.initializers.orthogonal`` calls LAPACK's QR, whose batched CPU kernel (what
``jax.vmap(train)(keys)`` turns it into) runs on XLA's intra-op thread pool and blocks a worker
thread while it waits for its own sub-tasks; when every worker does so the program deadlocks
(issue 8: PPO on association-v0 under a vmap over seeds never finished).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax._checks import check_choice
from dtwin_jax.envs.spaces import Box, Discrete, MultiDiscrete, Simplex
from dtwin_jax.learners.common import masked_mean

#: activations accepted by the ``activation`` fields of the learners' configs
ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}

#: logit given to illegal actions: finite (no NaN in softmax or its gradient) and
#: small enough that ``exp`` underflows to exactly 0 against any legal logit
MASKED_LOGIT = -1e9

#: Q-value given to illegal actions: finite and below any learnt value, so argmax skips them
MASKED_Q = -1e9

#: bounds of the log standard deviation of Gaussian policies (std in [4.5e-5, 7.4])
LOG_STD_RANGE = (-10.0, 2.0)

#: bounds of Dirichlet concentrations: >= 1 keeps the density finite on the simplex's faces
#: (no sample piles at 0, so ``log_prob`` stays finite); <= 1000 bounds its precision
DIRICHLET_RANGE = (1.0, 1000.0)


def activation_fn(name: str):
    """The activation function called ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[check_choice("activation", name, tuple(ACTIVATIONS))]


def orthogonal(scale: float = 1.0):
    """Initialiser of ``[fan_in, fan_out]`` kernels with orthonormal rows or columns, times
    ``scale`` (Haar distributed, as ``flax.linen.initializers.orthogonal``).

    A Gaussian ``[m, n]`` matrix (``m >= n``) is orthonormalised column by column by classical
    Gram-Schmidt applied twice (a ``lax.scan`` of matrix-vector products, no LAPACK: see the
    module docstring); the R factor then has a positive diagonal, so Q is Haar distributed.
    """

    def init(key, shape, dtype=jnp.float32):
        rows = int(np.prod(shape[:-1]))
        cols = int(shape[-1])
        m, n = max(rows, cols), min(rows, cols)
        a = jax.random.normal(key, (m, n), jnp.float32)

        def column(q, j):
            v = a[:, j]
            for _ in range(2):  # "twice is enough" for float32 orthogonality
                v = v - q @ (q.T @ v)
            q = q.at[:, j].set(v / jnp.linalg.norm(v))
            return q, None

        q, _ = jax.lax.scan(column, jnp.zeros((m, n), jnp.float32), jnp.arange(n))
        q = q if rows >= cols else q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


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
            x = act(nn.Dense(width, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        return x


# ------------------------------------------------------------------------------ action specs
@dataclass(frozen=True)
class ActionSpec:
    """Static (hashable) description of one agent's action space, for building heads.

    ``kind``: ``"discrete"``, ``"multi_discrete"``, ``"box"`` or ``"simplex"``; ``shape``: the
    action shape of one agent; ``nvec``: values per factor (``(n,)`` for ``Discrete``);
    ``low``/``high``: flattened Box bounds (may be infinite); ``squash``: map a Box action
    through tanh to its finite bounds (a plain Gaussian, clipped by the env, if False).
    """

    kind: str
    shape: tuple[int, ...]
    nvec: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    squash: bool = True

    @classmethod
    def from_space(cls, space, squash: bool = True, learner: str = "this learner") -> ActionSpec:
        """The spec of ``space``; ``TypeError`` naming ``learner`` for any other space."""
        if isinstance(space, Discrete) and space.shape == ():
            return cls("discrete", (), (space.n,))
        if isinstance(space, MultiDiscrete):
            return cls("multi_discrete", space.shape, space.nvec)
        if isinstance(space, Box):
            size = int(np.prod(space.shape))
            low = np.broadcast_to(np.asarray(space.low, np.float64), space.shape).reshape(size)
            high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape).reshape(size)
            return cls("box", space.shape, (), tuple(map(float, low)), tuple(map(float, high)),
                       bool(squash))
        if isinstance(space, Simplex):
            return cls("simplex", space.shape, (space.n,))
        raise TypeError(
            f"{learner} accepts one action per agent from Discrete(n) (shape ()), "
            f"MultiDiscrete, Box or Simplex; got {space!r}"
        )

    @property
    def num_outputs(self) -> int:
        """Width of the policy head's last layer."""
        if self.kind == "multi_discrete":
            return len(self.nvec) * max(self.nvec)
        if self.kind == "box":
            return len(self.low)
        return self.nvec[0]

    @property
    def discrete(self) -> bool:
        """Whether actions are integers (kind ``"discrete"`` or ``"multi_discrete"``)."""
        return self.kind in ("discrete", "multi_discrete")


class PolicyHead(nn.Module):
    """The raw parameters of an :class:`ActionSpec`'s distribution (see
    :func:`policy_distribution`): ``[..., H] ->`` logits ``[..., N]`` (discrete), logits
    ``[..., F, n_max]`` (multi-discrete), ``(mean [..., d], log_std [d])`` (box, a
    state-independent log std starting at 0) or concentration pre-activations ``[..., n]``
    (simplex). Orthogonal init with gain 0.01: a near-uniform / unit-std initial policy.
    """

    spec: ActionSpec

    @nn.compact
    def __call__(self, h: jax.Array):
        out = nn.Dense(self.spec.num_outputs, kernel_init=orthogonal(0.01))(h)
        if self.spec.kind == "multi_discrete":
            return out.reshape(*out.shape[:-1], len(self.spec.nvec), max(self.spec.nvec))
        if self.spec.kind == "box":
            log_std = self.param("log_std", nn.initializers.zeros, (self.spec.num_outputs,))
            return out, log_std
        return out


class ActorCritic(nn.Module):
    """Separate actor and critic MLP torsos with a :class:`PolicyHead` and a value head.

    ``[..., D] -> (head output, value [...])``; ``num_actions`` is shorthand for
    ``spec=ActionSpec("discrete", (), (num_actions,))`` (logits ``[..., num_actions]``).
    Value head init: orthogonal with gain 1.0.
    """

    num_actions: int | None = None
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    spec: ActionSpec | None = None

    def setup(self):
        spec = self.spec
        if spec is None:
            if self.num_actions is None:
                raise ValueError("ActorCritic needs num_actions or spec")
            spec = ActionSpec("discrete", (), (self.num_actions,))
        self.actor_torso = MLP(self.hidden_sizes, self.activation)
        self.actor_head = PolicyHead(spec)
        self.critic_torso = MLP(self.hidden_sizes, self.activation)
        self.critic_head = nn.Dense(1, kernel_init=orthogonal(1.0))

    def __call__(self, x: jax.Array):
        return self.actor_head(self.actor_torso(x)), self.value(x)

    def value(self, x: jax.Array) -> jax.Array:
        """The critic alone: ``[..., D] -> [...]`` (``apply(..., method="value")``)."""
        return self.critic_head(self.critic_torso(x))[..., 0]


# ------------------------------------------------------------------------------ recurrence
class ResetGRU(nn.Module):
    """A GRU cell scanned over a leading time axis; the hidden state restarts at resets.

    ``__call__(h [B, H], (x [T, B, D], reset [T, B] bool)) -> (h_T [B, H], y [T, B, H])``:
    at each step ``t`` the carried state is replaced by zeros where ``reset[t]`` (the
    observation ``x[t]`` starts an episode) before the cell runs, so the output after a reset
    equals the output from a fresh state. Extra leading axes after ``B`` (e.g. agents) are
    allowed: ``h [B, A, H]``, ``x [T, B, A, D]``, ``reset [T, B]`` or ``[T, B, A]``.
    """

    hidden_size: int

    @nn.compact
    def __call__(self, h: jax.Array, inputs: tuple[jax.Array, jax.Array]):
        x, reset = inputs
        cell = nn.scan(
            _ResetCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=0,
            out_axes=0,
        )(self.hidden_size)
        return cell(h, (jnp.asarray(x, jnp.float32), reset))

    @staticmethod
    def initial_state(batch_shape: Sequence[int], hidden_size: int) -> jax.Array:
        """A fresh hidden state ``[*batch_shape, hidden_size]`` of zeros."""
        return jnp.zeros((*batch_shape, hidden_size), jnp.float32)


class _ResetCell(nn.Module):
    hidden_size: int

    @nn.compact
    def __call__(self, h, inputs):
        x, reset = inputs
        keep = ~reset.reshape(reset.shape + (1,) * (h.ndim - reset.ndim))
        h = jnp.where(keep, h, 0.0)
        h, y = nn.GRUCell(self.hidden_size, kernel_init=orthogonal(1.0),
                          recurrent_kernel_init=orthogonal(1.0))(h, x)
        return h, y


# ------------------------------------------------------------------------------ Q heads
class QHead(nn.Module):
    """Q-values ``[..., H] -> [..., *q_shape]`` (``q_shape = (N,)`` or ``(F, n_max)``).

    ``dueling``: ``Q = V + A - mean(A)``, the mean over the legal actions of each factor when
    ``action_mask [..., *q_shape]`` is given (over all otherwise). Illegal entries are NOT set
    here: apply :func:`masked_q` before a max or argmax.
    """

    q_shape: tuple[int, ...]
    dueling: bool = False

    @nn.compact
    def __call__(self, h: jax.Array, action_mask: jax.Array | None = None) -> jax.Array:
        size = int(np.prod(self.q_shape))
        adv = nn.Dense(size, kernel_init=orthogonal(1.0))(h).reshape(*h.shape[:-1], *self.q_shape)
        if not self.dueling:
            return adv
        value = nn.Dense(1, kernel_init=orthogonal(1.0))(h)
        value = value.reshape(*h.shape[:-1], *(1,) * len(self.q_shape))
        mask = jnp.ones(adv.shape, bool) if action_mask is None else action_mask
        mean = masked_mean(adv, mask, axis=-1, keepdims=True)
        return value + adv - mean


def masked_q(q: jax.Array, action_mask: jax.Array | None) -> jax.Array:
    """``q`` with illegal actions (``action_mask`` False) set to :data:`MASKED_Q` (finite)."""
    if action_mask is None:
        return q
    return jnp.where(action_mask, q, MASKED_Q)


def greedy_action(q: jax.Array, action_mask: jax.Array | None) -> jax.Array:
    """Legal argmax of ``q [..., n]`` along the last axis, int32 ``[...]``."""
    return jnp.argmax(masked_q(q, action_mask), axis=-1).astype(jnp.int32)


# ------------------------------------------------------------------------------ distributions
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


class ActionDistribution:
    """A policy over one agent's actions, batched over leading axes ``[...]``.

    The learner stores *raw* actions (what :meth:`sample` returns) and gives the env
    :meth:`env_action` of them; ``log_prob`` and ``entropy`` are summed over the action's
    components (factors, dimensions), so they are ``[...]``. Built by
    :func:`policy_distribution`.
    """

    def __init__(self, dist, mode, to_env=None, log_det=None, sample=None):
        self.dist = dist
        self._mode = mode
        self._to_env = to_env
        self._log_det = log_det
        self._sample = sample

    def sample(self, key: jax.Array) -> jax.Array:
        """A raw action: int32 ``[...]`` / ``[..., F]`` (discrete / multi-discrete), float32
        ``[..., d]`` (box, before squash or clip) or ``[..., n]`` (simplex)."""
        return self.dist.sample(seed=key) if self._sample is None else self._sample(key)

    def log_prob(self, raw: jax.Array) -> jax.Array:
        """``[...]`` float32 log-probability (nats) of raw actions, summed over components; a
        squashed box's is the density of the env action (tanh change of variables)."""
        lp = self.dist.log_prob(raw)
        return lp if self._log_det is None else lp - self._log_det(raw)

    def entropy(self) -> jax.Array:
        """``[...]`` float32 entropy (nats), summed over components; a squashed box's is the
        Gaussian's, before the squash."""
        return self.dist.entropy()

    def mode(self) -> jax.Array:
        """The deterministic raw action: argmax (discrete), mean (Gaussian, Dirichlet)."""
        return self._mode()

    def env_action(self, raw: jax.Array) -> jax.Array:
        """The action given to the env: a box's raw ``[..., d]`` tanh-squashed (or clipped) to
        its bounds and reshaped to ``[..., *shape]``; other kinds unchanged."""
        return raw if self._to_env is None else self._to_env(raw)


def policy_distribution(spec: ActionSpec, head_out, action_mask: jax.Array | None = None
                        ) -> ActionDistribution:
    """The :class:`ActionDistribution` of a :class:`PolicyHead` output.

    * ``discrete``: masked categorical (``action_mask [..., N]``); raw action int32 ``[...]``.
    * ``multi_discrete``: one masked categorical per factor (``action_mask [..., F, n_max]``,
      values ``>= nvec[f]`` always illegal); raw action int32 ``[..., F]``; log-prob and
      entropy summed over factors.
    * ``box``: diagonal Gaussian over raw ``u [..., d]`` (std ``exp(log_std)`` clipped to
      :data:`LOG_STD_RANGE`). With ``spec.squash``, dimensions with finite bounds give the env
      ``low + (high - low) (tanh(u) + 1) / 2``, and ``log_prob`` is the density of that action
      (change of variables ``log |dy/du| = log((high - low) / 2) + 2 (log 2 - u -
      softplus(-2u))``, exact and stable at any ``u``); ``entropy`` is the Gaussian's, before
      the squash. Without ``squash`` the env gets ``u`` clipped to the bounds.
    * ``simplex``: Dirichlet with concentration ``1 + softplus(z)`` capped at
      :data:`DIRICHLET_RANGE`; raw action = env action ``[..., n]``; mode = mean.
    """
    if spec.kind == "discrete":
        dist = masked_categorical(head_out, action_mask)
        return ActionDistribution(dist, lambda: jnp.argmax(dist.logits, -1).astype(jnp.int32))
    if spec.kind == "multi_discrete":
        valid = np.arange(max(spec.nvec))[None, :] < np.asarray(spec.nvec)[:, None]
        mask = jnp.asarray(valid) if action_mask is None else action_mask & valid
        cat = masked_categorical(head_out, mask)
        dist = distrax.Independent(cat, reinterpreted_batch_ndims=1)
        return ActionDistribution(dist, lambda: jnp.argmax(cat.logits, -1).astype(jnp.int32))
    if spec.kind == "box":
        mean, log_std = head_out
        std = jnp.exp(jnp.clip(log_std, *LOG_STD_RANGE)) * jnp.ones_like(mean)
        dist = distrax.MultivariateNormalDiag(mean, std)
        low, high = np.asarray(spec.low, np.float32), np.asarray(spec.high, np.float32)
        finite = np.isfinite(low) & np.isfinite(high)
        mid = np.where(finite, (low + high) / 2, 0.0).astype(np.float32)
        half = np.where(finite, (high - low) / 2, 1.0).astype(np.float32)
        shape = spec.shape

        def reshape(a):
            return a.reshape(*a.shape[:-1], *shape)

        if spec.squash and finite.any():
            def to_env(u):
                return reshape(jnp.where(finite, mid + half * jnp.tanh(u), u))

            def log_det(u):
                tanh_ld = 2.0 * (np.log(2.0) - u - jax.nn.softplus(-2.0 * u))
                return jnp.where(finite, np.log(half) + tanh_ld, 0.0).sum(-1)

            return ActionDistribution(dist, lambda: mean, to_env=to_env, log_det=log_det)
        return ActionDistribution(dist, lambda: mean,
                                  to_env=lambda u: reshape(jnp.clip(u, low, high)))
    if spec.kind == "simplex":
        lo, hi = DIRICHLET_RANGE
        conc = jnp.minimum(lo + jax.nn.softplus(head_out), hi)
        dist = distrax.Dirichlet(conc)
        tiny = float(np.finfo(np.float32).tiny)

        def sample_fn(key):
            x = dist.sample(seed=key)
            return jnp.maximum(x, tiny) / jnp.maximum(x, tiny).sum(-1, keepdims=True)

        return ActionDistribution(dist, lambda: conc / conc.sum(-1, keepdims=True),
                                  sample=sample_fn)
    raise TypeError(f"unknown action kind {spec.kind!r}")
