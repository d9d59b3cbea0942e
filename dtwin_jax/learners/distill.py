"""Knowledge distillation of a trained Q-network into a small student (Rusu et al. 2016,
"Policy distillation"), from replay states.

``distill = make_distill(teacher_apply, obs_dim, num_actions, config)``; ``distill(key,
teacher_params, states [N, D]) -> (student_params, metrics)`` runs ``num_steps`` Adam steps on
minibatches of ``batch_size`` states drawn uniformly from ``states``, one ``lax.scan``, jit- and
vmap-able. Student: :class:`~dtwin_jax.learners.dqn.QNetwork` (plain head) with
``hidden_sizes`` (e.g. 2 layers of 4 or 16 units). Loss per state, ``q_t``/``q_s`` the teacher's
and student's Q-values ``[n]``::

    "mse": mean_a (q_s - q_t)^2
    "kl":  KL(softmax(q_t / T) || softmax(q_s / T))     (T = temperature)

Metrics per step: ``loss`` and ``agreement`` (fraction of the minibatch where the student's
greedy action equals the teacher's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from dtwin_jax._checks import check_choice, check_float, check_int, check_int_tuple
from dtwin_jax.learners.dqn import QNetwork
from dtwin_jax.learners.nets import ACTIVATIONS

LOSSES = ("mse", "kl")


@dataclass(frozen=True)
class DistillConfig:
    """Student and schedule. Validated on construction."""

    hidden_sizes: tuple[int, ...] = (16, 16)
    activation: str = "relu"
    num_steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    loss: str = "mse"
    temperature: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes",
                           check_int_tuple("hidden_sizes", self.hidden_sizes, lo=1))
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_int("num_steps", self.num_steps, lo=1)
        check_int("batch_size", self.batch_size, lo=1)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_choice("loss", self.loss, LOSSES)
        check_float("temperature", self.temperature, 0.0, lo_open=True)


def student_network(num_actions: int, config: DistillConfig) -> QNetwork:
    """The student: a plain :class:`QNetwork` of ``config.hidden_sizes``."""
    return QNetwork(num_actions, config.hidden_sizes, config.activation)


def mlp_cost(obs_dim: int, hidden_sizes, num_actions: int, dueling: bool = False) -> dict:
    """Size and inference cost of one forward pass of a dense Q-network on one state:
    ``params`` (weights + biases) and ``flops`` (2 per multiply-add, dense layers only)."""
    widths = [obs_dim, *hidden_sizes]
    layers = list(zip(widths[:-1], widths[1:], strict=True))
    layers.append((widths[-1], num_actions))
    if dueling:
        layers.append((widths[-1], 1))
    params = sum(i * o + o for i, o in layers)
    return {"params": int(params), "flops": int(sum(2 * i * o for i, o in layers))}


def make_distill(teacher_apply: Callable, obs_dim: int, num_actions: int,
                 config: DistillConfig | None = None) -> Callable:
    """Build ``distill(key, teacher_params, states) -> (student_params, metrics)``
    (module docstring). ``teacher_apply(teacher_params, obs [B, D]) -> q [B, n]``."""
    config = DistillConfig() if config is None else config
    check_int("obs_dim", obs_dim, lo=1)
    student = student_network(num_actions, config)
    tx = optax.adam(config.lr)
    temp = config.temperature

    def loss_fn(params, obs, q_t):
        q_s = student.apply(params, obs)
        if config.loss == "mse":
            loss = jnp.mean(jnp.square(q_s - q_t))
        else:
            p_t = jax.nn.softmax(q_t / temp, -1)
            loss = jnp.mean(jnp.sum(p_t * (jax.nn.log_softmax(q_t / temp, -1)
                                           - jax.nn.log_softmax(q_s / temp, -1)), -1))
        agree = jnp.mean(jnp.argmax(q_s, -1) == jnp.argmax(q_t, -1))
        return loss, agree

    def distill(key, teacher_params, states):
        k_init, k_steps = jax.random.split(key)
        params = student.init(k_init, jnp.zeros((1, obs_dim), jnp.float32))
        n = states.shape[0]

        def step(carry, k):
            params, opt = carry
            obs = states[jax.random.randint(k, (config.batch_size,), 0, n)]
            q_t = jax.lax.stop_gradient(teacher_apply(teacher_params, obs))
            (loss, agree), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, obs, q_t)
            upd, opt = tx.update(grads, opt, params)
            return (optax.apply_updates(params, upd), opt), {"loss": loss, "agreement": agree}

        (params, _), metrics = jax.lax.scan(step, (params, tx.init(params)),
                                            jax.random.split(k_steps, config.num_steps))
        return params, metrics

    return distill

