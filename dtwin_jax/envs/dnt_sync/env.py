"""``dnt-sync-v0``: digital network twin synchronisation with Hungarian RB allocation.

Reproduces the setting of Yu, Liu, Yang, Sun, Chen, "Optimizing Wireless Resource Management
and Synchronization in Digital Twin Networks" (arXiv 2502.05116); parameters in
``PARAMS.md`` section 2. M BSs serve U users that random-walk in a 300 m x 100 m area; a twin
of the users' positions lives on a cloud server. Every slot each BS (an agent) decides whether
to send an update to the twin and which of its covered users to serve; RBs are then allocated
by the iterative per-BS Hungarian scheme (:mod:`dtwin_jax.envs.dnt_sync.physics`). Users
covered by a BS whose update arrived are exact in the twin; the others are predicted from the
twin's last K states by a predictor (the GRU of :mod:`dtwin_jax.twins.predictor` by default).

Time line of ``step`` (slot t): draw fading; predict the twin from its history; decode the
actions at the current positions; allocate RBs, send updates, set the twin, compute rates,
errors and rewards; push the twin's state into the history; users move; observe slot t + 1.

Chosen where the paper is silent: d floored at 1 m; the update RB is the one with the best
uplink gain, its rate interference-free; ``D = alpha = 1``; ``rho = -1``; the walk is clipped
to the area; default move probabilities a fixed seeded Dirichlet(1) draw per user; the twin
starts synchronised (history = K copies of the initial positions); the local rewards below;
``served_by`` and the overlap penalty count decisions (a chosen user left without an RB
because its BS has fewer free RBs than chosen users still counts as served).

Actions of BS m (``action_form``):

    "flat"      action [M] int32 in [0, 2^(U+1)): bit 0 = update, bit 1+u = serve user u
                (U <= 12). action_mask [M, 2^(U+1)] bool: False for any index serving a
                user outside m's coverage.
    "factored"  action [M, U+1] int32 in {0, 1}: factor 0 = update, factor 1+u = serve u.
                action_mask [M, U+1, 2] bool: value 1 of factor 1+u False outside coverage.

Illegal actions (documented rule; the decisions agree in both forms): a value other than a
legal one counts as 0. Factored form: any value outside {0, 1} is 0 and a masked serve value 1
becomes 0 - exactly the platform's :func:`~dtwin_jax.envs.base.legal_action` (first legal value
of each factor). Flat form: an index outside [0, 2^(U+1)) is 0; a masked index keeps its update
bit and its legal serve bits, i.e. the serve bits of users outside coverage are dropped (the
factored rule applied bit by bit, rather than the platform's first legal index, which would
throw the whole decision away).

Observation of BS m (``features [M, 5U + 2 + M]`` f32; agent_mask [M] all True):

    [0, U)        1 if user u is within m's coverage radius
    [U, 2U)       (x_u - x_m) / radius, 0 outside coverage               in [-1, 1]
    [2U, 3U)      (y_u - y_m) / radius, 0 outside coverage               in [-1, 1]
    [3U, 4U)      slots since the twin held u's exact position, min(., 20) / 20
    [4U, 5U)      ln(radius / max(d, d_min)) / ln(radius), 0 outside coverage: a log-distance
                  (mean channel gain) proxy, 0 at the coverage edge, 1 at 1 m   in [0, 1]
    5U            1 if m's last update arrived
    5U + 1        slots since m's last arrived update, min(., 20) / 20
    [5U+2, +M)    one-hot agent id

State: :class:`~dtwin_jax.envs.dnt_sync.types.DntState`; params:
:class:`~dtwin_jax.envs.dnt_sync.types.DntParams`.

Rewards: ``reward [M]`` per-BS local rewards (for IQL) and ``info["team_reward"]`` (for VDN);
formulas in :mod:`dtwin_jax.envs.dnt_sync.physics`.

``info`` (per step):

    rates [U] f32 bit/s        downlink rate of every user
    sum_rate [] f32 bit/s
    twin_error [] f32 m^2      sum_u ||s_u - s_twin_u||^2
    update [M] bool            BSs that sent an update
    update_ok [M] bool         updates that arrived
    rb_user [M, N] int32       user on each RB; -1 free; -2 the RB reserved for the update
    served_by [U] int32        BS that chose the user; -1 none; -2 several
    team_reward [] f32
    agent_mask [M] bool        all True
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.envs.base import AgentObs, MultiAgentEnv
from dtwin_jax.envs.dnt_sync import generator, physics
from dtwin_jax.envs.dnt_sync.types import DntParams, DntState
from dtwin_jax.envs.spaces import Box, Discrete, MultiDiscrete
from dtwin_jax.mobility import RandomWalk

ACTION_FORMS = ("flat", "factored")
MAX_FLAT_USERS = 12
PREDICTORS = ("gru", "persistence")


def persistence(history: jax.Array) -> jax.Array:
    """"Last known position" predictor: ``history [K, U, 2] -> history[-1]``."""
    return history[-1]


class DntSyncEnv(MultiAgentEnv):
    """Digital network twin synchronisation (see the module docstring).

    Args:
        num_bs: M BSs, the agents (static).
        num_users: U users (static).
        num_rbs: N RBs per BS (static).
        history_len: K twin states the predictor reads (the shipped GRU was trained with
            K = 5; being recurrent it accepts any K).
        action_form: ``"flat"`` (default for U <= 12) or ``"factored"`` (default above).
        predictor: ``"gru"`` (default: the shipped checkpoint of
            :mod:`dtwin_jax.twins.predictor`, imported lazily - the one documented exception
            to "lower layers get models as functions"), ``"persistence"``, or a callable
            ``history [K, U, 2] f32 m -> [U, 2] f32 m`` (pure, jittable). The shipped GRU
            normalises with the default area and step length: with other mobility params
            pass a predictor trained on them.
    """

    def __init__(
        self,
        num_bs: int = 3,
        num_users: int = 12,
        num_rbs: int = 12,
        history_len: int = 5,
        action_form: str | None = None,
        predictor: str | Callable = "gru",
    ):
        self.num_bs = _checks.check_int("num_bs", num_bs, lo=1, hi=64)
        self.num_users = _checks.check_int("num_users", num_users, lo=1, hi=4096)
        self.num_rbs = _checks.check_int("num_rbs", num_rbs, lo=1, hi=1024)
        self.history_len = _checks.check_int("history_len", history_len, lo=1, hi=64)
        if action_form is None:
            action_form = "flat" if self.num_users <= MAX_FLAT_USERS else "factored"
        self.action_form = _checks.check_choice("action_form", action_form, ACTION_FORMS)
        if self.action_form == "flat" and self.num_users > MAX_FLAT_USERS:
            raise ValueError(
                f"action_form='flat' needs num_users <= {MAX_FLAT_USERS} (2^(U+1) actions), "
                f"got num_users={self.num_users}; use action_form='factored'"
            )
        self.num_agents = self.num_bs
        self.walk = RandomWalk(self.num_users)
        self.predictor = self._make_predictor(predictor)

    def _make_predictor(self, predictor) -> Callable:
        if isinstance(predictor, str):
            name = _checks.check_choice("predictor", predictor, PREDICTORS)
            if name == "persistence":
                return persistence
            from dtwin_jax.twins.predictor import load_predictor  # documented exception

            return load_predictor()
        if not callable(predictor):
            raise TypeError(
                f"predictor must be 'gru', 'persistence' or a callable, got "
                f"{type(predictor).__name__}"
            )
        hist = jax.ShapeDtypeStruct((self.history_len, self.num_users, 2), jnp.float32)
        try:
            out = jax.eval_shape(predictor, hist)
        except Exception as err:
            raise ValueError(
                f"predictor failed on a history of shape {hist.shape}: {err}"
            ) from err
        if getattr(out, "shape", None) != (self.num_users, 2):
            raise ValueError(
                f"predictor must map a history [K, U, 2] = {hist.shape} to [U, 2] = "
                f"{(self.num_users, 2)}, got {getattr(out, 'shape', type(out).__name__)}"
            )
        return predictor

    # ------------------------------------------------------------------ params
    @property
    def default_params(self) -> DntParams:
        f32 = jnp.float32
        mob = self.walk.default_params.replace(
            move_probs=jnp.asarray(generator.default_move_probs(self.num_users))
        )
        return DntParams(
            bs_xy=jnp.asarray(generator.default_bs_xy(self.num_bs)),
            coverage_radius=f32(60.0),
            cloud_xy=jnp.asarray([0.0, 50.0], f32),
            bandwidth=f32(1.0),
            tx_power=f32(1.0),
            noise_density=f32(1e-5),
            min_distance=f32(1.0),
            update_size=f32(1.0),
            delay_threshold=f32(1.0),
            eps=f32(0.3),
            rho=f32(-1.0),
            episode_length=jnp.int32(50),
            mobility=mob,
        )

    def param_components(self) -> dict:
        return {"mobility": self.walk}

    def check_params(self, params: DntParams, rules: Rules = CONCRETE) -> None:
        """Every field's rule (ranges in the messages); see :mod:`dtwin_jax._params`."""
        rules.array("bs_xy", params.bs_xy, shape=(self.num_bs, 2), lo=-1e6, hi=1e6)
        rules.array("coverage_radius", params.coverage_radius, shape=(), lo=1.0, hi=1e6,
                    lo_open=True)
        rules.array("cloud_xy", params.cloud_xy, shape=(2,), lo=-1e6, hi=1e6)
        for name in ("bandwidth", "tx_power", "noise_density", "update_size",
                     "delay_threshold"):
            rules.array(name, getattr(params, name), shape=(), lo=0.0, hi=1e12, lo_open=True)
        rules.array("min_distance", params.min_distance, shape=(), lo=0.0, hi=1e3,
                    lo_open=True)
        rules.array("eps", params.eps, shape=(), lo=0.0, hi=1.0)
        rules.array("rho", params.rho, shape=(), lo=-1e6, hi=0.0)
        rules.array("episode_length", params.episode_length, shape=(), lo=1, hi=2**31 - 1,
                    integer=True)
        self.walk.check_params(params.mobility, rules)

    # ------------------------------------------------------------------ spaces
    @property
    def feature_dim(self) -> int:
        """Width of one BS's observation: ``5U + 2 + M`` (layout in the module docstring)."""
        return 5 * self.num_users + 2 + self.num_bs

    def observation_space(self, params=None) -> Box:
        u = self.num_users
        low = np.zeros(self.feature_dim, np.float32)
        low[u:3 * u] = -1.0
        return Box(low, np.ones(self.feature_dim, np.float32), (self.feature_dim,))

    def action_space(self, params=None) -> Discrete | MultiDiscrete:
        if self.action_form == "flat":
            return Discrete(2 ** (self.num_users + 1))
        return MultiDiscrete((2,) * (self.num_users + 1))

    def action_mask(self, state: DntState, params: DntParams) -> jax.Array:
        """Mask of every BS in ``state``: ``[M, 2^(U+1)]`` (flat) or ``[M, U+1, 2]``."""
        cov = physics.coverage(physics.distances(state.mobility.pos, params.bs_xy), params)
        if self.action_form == "flat":
            return physics.flat_mask(cov)
        return physics.factored_mask(cov)

    def decode(self, action: jax.Array, params: DntParams) -> tuple[jax.Array, jax.Array]:
        """``action`` -> ``update [M]`` bool, ``serve [M, U]`` bool (before coverage; see the
        rule for illegal actions). Shape and dtype are checked at trace time
        (:meth:`check_action`: ValueError/TypeError naming ``action``)."""
        action = self.check_action(action, params)
        if self.action_form == "flat":
            return physics.decode_flat(action, self.num_users)
        return physics.decode_factored(action)

    # ------------------------------------------------------------------ API
    def reset_env(self, key, params: DntParams):
        state = generator.initial_state(key, self.walk, params, self.history_len, self.num_bs)
        return self.observe(state, params), state

    def observe(self, state: DntState, params: DntParams) -> AgentObs:
        """The observation of ``state`` (module docstring)."""
        feats = physics.features(state.mobility.pos, state.stale, state.last_update,
                                 state.since_update, params)
        return AgentObs(features=feats, action_mask=self.action_mask(state, params),
                        agent_mask=jnp.ones(self.num_bs, bool))

    def step_env(self, key, state: DntState, action, params: DntParams):
        update, serve = self.decode(action, params)
        k_draw, k_mob = jax.random.split(key)
        draws = physics.draw_slot(k_draw, self.num_users, self.num_bs, self.num_rbs)
        prediction = self.predictor(state.history).astype(jnp.float32)
        res = physics.slot(state.mobility.pos, prediction, draws, update, serve, params)
        t = state.t + 1
        state = DntState(
            mobility=self.walk.step(k_mob, state.mobility, params.mobility),
            history=jnp.concatenate([state.history[1:], res.twin[None]], axis=0),
            stale=jnp.where(res.exact, 0, state.stale + 1),
            last_update=res.update_ok,
            since_update=jnp.where(res.update_ok, 0, state.since_update + 1),
            t=t,
        )
        info = {
            "rates": res.rates,
            "sum_rate": jnp.sum(res.rates),
            "twin_error": res.twin_error,
            "update": res.update,
            "update_ok": res.update_ok,
            "rb_user": res.rb_user,
            "served_by": res.served_by,
            "team_reward": res.team_reward,
            "agent_mask": jnp.ones(self.num_bs, bool),
        }
        truncated = t >= params.episode_length
        return (self.observe(state, params), state, res.reward, jnp.bool_(False), truncated,
                info)
