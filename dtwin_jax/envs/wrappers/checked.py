"""``CheckedEnv``: the opt-in checked mode, run-time errors for bad actions and params.

Without it, illegal actions follow the rule of :func:`dtwin_jax.envs.base.legal_action` and
params are trusted. ``CheckedEnv(env)`` is the same env with ``jax.experimental.checkify``
checks in ``reset_env``, ``reset_from`` and ``step_env`` (so ``reset``, ``step`` and
:class:`~dtwin_jax.envs.wrappers.VecEnv` all check):

- params: every rule of ``env.check_params`` (ranges, finiteness, cross-field rules such as
  BSs inside the area), evaluated on the traced values;
- actions: every agent's action must be a value of the action space (in range, finite) and
  legal under ``env.action_mask(state, params)``.

Checks record errors instead of raising inside the compiled function. Run the outermost
function through :func:`checked` (``jit(checkify.checkify(fn))`` and ``err.throw()``)::

    env = CheckedEnv(make("association-v0", num_bs=5, max_users=12))
    step = checked(env.step)
    obs, state, reward, term, trunc, info = step(key, state, action, params)  # raises

A jitted function that reaches these checks without ``checkify.checkify`` fails to trace.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from dtwin_jax._params import CONCRETE, TRACED
from dtwin_jax.envs.base import Environment, MultiAgentEnv


def checked(fn: Callable) -> Callable:
    """``fn`` jitted with its checkify checks functionalised; raises
    ``jax.experimental.checkify.JaxRuntimeError`` when one failed, else returns ``fn``'s
    output."""
    run = jax.jit(checkify.checkify(fn))

    def wrapper(*args, **kwargs):
        err, out = run(*args, **kwargs)
        err.throw()
        return out

    return wrapper


class CheckedEnv(Environment):
    """``env`` with run-time checks of params and actions (see the module docstring).

    Everything else (spaces, ``default_params``, ``make_params``, attributes such as
    ``num_bs``) is ``env``'s.
    """

    def __init__(self, env: Environment):
        if not isinstance(env, Environment):
            raise TypeError(f"env must be an Environment, got {type(env).__name__}")
        self.env = env
        self.num_agents = env.num_agents

    def __getattr__(self, name):
        return getattr(self.env, name)

    @property
    def name(self) -> str:
        """``"Checked(<wrapped env's name>)"``."""
        return f"Checked({self.env.name})"

    @property
    def default_params(self):
        return self.env.default_params

    def check_params(self, params, rules=CONCRETE) -> None:
        self.env.check_params(params, rules)

    def param_components(self):
        return self.env.param_components()

    def replace_params(self, params, **overrides):
        return self.env.replace_params(params, **overrides)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def action_space(self, params):
        return self.env.action_space(params)

    def action_mask(self, state, params):
        return self.env.action_mask(state, params)

    def check_action(self, action, params) -> jax.Array:
        return self.env.check_action(action, params)

    def reset_env(self, key, params):
        self.env.check_params(params, TRACED)
        return self.env.reset_env(key, params)

    def reset_from(self, key, state, params):
        self.env.check_params(params, TRACED)
        return self.env.reset_from(key, state, params)

    def step_env(self, key, state, action, params):
        self.env.check_params(params, TRACED)
        action = self.env.check_action(action, params)
        space = self.env.action_space(params)
        mask = self.env.action_mask(state, params)
        what = f"out of range, not finite or masked (space {space})".replace("{", "{{")
        what = what.replace("}", "}}")
        if isinstance(self.env, MultiAgentEnv):
            contains = jax.vmap(space.contains, in_axes=(0, None if mask is None else 0))
            ok = contains(action, mask)
            bad = jnp.argmin(ok)
            checkify.check(jnp.all(ok), "action of agent {} is {}: " + what, bad, action[bad])
        else:
            checkify.check(space.contains(action, mask), "action is {}: " + what, action)
        return self.env.step_env(key, state, action, params)
