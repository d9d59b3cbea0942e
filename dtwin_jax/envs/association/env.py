"""``association-v0``: user association and load balancing in a heterogeneous network.

A deployment of ``num_bs`` base stations (the first ``num_macro`` are 3GPP TR 38.901 UMa
macro cells, the rest UMi street-canyon small cells) serves up to ``max_users`` users that
move by a mobility model of :mod:`dtwin_jax.mobility` chosen in the constructor. Every user
is an agent (shared policy): each step it picks its serving BS among its ``num_candidates``
strongest (by full-load SINR), and is paid a weighted sum of its own utility and the network
utility (mean log-throughput of the active users).

Physics of one step (``U`` users, ``B`` BSs; :mod:`.physics`)::

    PL[u, b]   = LOS-probability-weighted 38.901 pathloss (UMa for macro, UMi for small)
    X[u, b]    = spatially correlated shadowing field of BS b read at the user (dB)
    P[u, b]    = tx_power_dbm[b] - PL - X                         (received power, dBm)
    SINR[u, b] = P[u, b] / (sum_{b' != b} P[u, b'] + noise)       (every BS at full load)
    rate[u]    = bandwidth / n_b * log2(1 + SINR[u, b]),  b = assoc[u], n_b active users on b

Shadowing is a periodic tile per twin (:mod:`dtwin_jax.radio.periodic_shadowing`: exact
separable exponential correlation within the period, ``shadow_tile_cells`` x
``shadow_cell_m``, 640 m by default), drawn by ``reset`` and kept by auto-resets, which place
it at a new random offset and symmetry: an episode start costs about one step and a twin's
state stays small (372 kB of tile at 22 BSs). A new episode draws new users and trajectories.

Time line of ``step``: the action applies to the positions (and SINR) that the agent saw,
rates and rewards are computed there, then users move, leave and arrive, and the next
observation is computed at the new positions.

Density process (a non-stationary network): the active-user count tracks a daily-style
profile ``n*(t) = num_users (1 + density_amp sin(2 pi (t / density_period + phase)))``, with
``phase`` drawn uniformly per episode (``state.phase``). Each step users leave with
probability ``max(churn, 1 - n*/n)`` and free slots fill with the probability that makes the
expected count ``n*(t+1)`` (:func:`.generator.presence_probs`); ``density_amp = 0`` and
``churn = 0`` keep a fixed set of ``num_users`` users.

Observation of user ``u`` for candidate ``k`` (BSs sorted by decreasing SINR), N =
``num_candidates``. ``observation="paper"`` (default; the paper's state, ``[U, 3 N]``)::

    features[u, k]        (SINR_dB - 10) / 20, clipped to [-10, 10]
    features[u, N + k]    users on the candidate / load_ref, clipped to [0, 20]
    features[u, 2N + k]   1 if the candidate is the user's current BS, else 0

``observation="rich"`` (an ablation, ``[U, 4 N]``): the load is divided by the mean load
(n_active / B) instead, and ``features[u, 3N + k] = ln(rate if the user joined / rate_ref)
/ 5`` (clipped to [-10, 10]) is added: the greedy-rate baseline's score, i.e. the answer.

``action [U]`` int: a candidate index per user (``Discrete(N)``). ``action_mask [U, N]``: a
user may change BS only on steps where it holds a decision token (probability
``decision_prob``, 1 by default: every-step decisions; below 1 asynchronous decisions avoid
herding); otherwise only its current BS is legal. Each handover costs ``w_handover`` (0.1 by
default: the utility of a 10% rate loss for one step) in the user's reward. A user whose
current BS left its candidate set must hand over, and
every candidate is legal. Illegal actions follow :func:`dtwin_jax.envs.base.legal_action`
(the first legal candidate). ``agent_mask [U]``: active users.

State and params: :mod:`.types`. ``info`` (per step): ``throughput [U]`` bit/s (0 for
inactive users), ``cell_edge`` (5th percentile over active users, bit/s),
``mean_throughput`` (bit/s), ``jain``, ``sum_log_utility`` (sum over active users of
ln(rate / rate_ref)), ``handovers`` int32 (count), ``num_active`` int32, ``load [B]``
float32 (users per BS), ``agent_mask [U]`` bool. The users' rewards mix own and network
utility, so the env is not purely cooperative and reports no ``team_reward``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.envs.association import generator, physics
from dtwin_jax.envs.association.metrics import throughput_metrics
from dtwin_jax.envs.association.types import AssociationParams, AssociationState
from dtwin_jax.envs.base import MultiAgentEnv, legal_action
from dtwin_jax.envs.spaces import Box, Discrete
from dtwin_jax.mobility import MobilityModel, StreetGraph
from dtwin_jax.radio import link, pathloss

#: default largest shadowing tile period in cells (64 x 10 m = 640 m; 372 kB for 22 BSs)
DEFAULT_TILE_CELLS = 64
#: largest ``area_m`` accepted (m)
MAX_AREA_M = 1.0e5
#: largest per-twin state accepted by the constructor (bytes, see ``state_bytes``)
MAX_STATE_BYTES = 256 * 2**20
#: the observation kinds (see the module docstring)
OBSERVATIONS = ("paper", "rich")
#: BSs may sit outside the mobility area by this fraction of its side (per axis)
BS_AREA_MARGIN = 0.1


class AssociationEnv(MultiAgentEnv):
    """User association twin (see the module docstring).

    Args:
        num_bs: number of BSs B (static).
        num_macro: how many of them (the first ones) are UMa macro cells.
        max_users: user slots U (static); the active count is ``params.num_users``.
        num_candidates: N, the action space size (<= num_bs).
        mobility: ``"street"`` (vehicles on ``street_graph``), ``"waypoint"``,
            ``"gauss_markov"``, ``"playback"`` or a ``MobilityModel`` with
            ``num_users == max_users`` (e.g. a generated-trajectory model).
        area_m: side of the square area (m), in (0, ``MAX_AREA_M``], used by the default
            mobility and the shadowing grid.
        street_graph: road network of ``"street"`` mobility (default: 11 x 11 grid spanning
            the area).
        shadow_cell_m: grid spacing of the shadowing tile (m).
        shadow_tile_cells: period T of the shadowing tile in cells (default: enough cells to
            cover the area, at most ``DEFAULT_TILE_CELLS``); the shadowing repeats every
            ``T * shadow_cell_m`` metres (see :mod:`dtwin_jax.radio.periodic_shadowing`).
        playback_samples: trajectory length T of ``"playback"`` mobility.
        observation: ``"paper"`` (SINR, load, previous association; 3N features) or
            ``"rich"`` (adds rate-if-joined and divides loads by the mean load; 4N).

    Raises ``ValueError`` when :meth:`state_bytes` exceeds ``MAX_STATE_BYTES``.
    """

    def __init__(
        self,
        num_bs: int = 22,
        num_macro: int = 4,
        max_users: int = 256,
        num_candidates: int = 4,
        mobility: str | MobilityModel = "street",
        area_m: float = 2000.0,
        street_graph: StreetGraph | None = None,
        shadow_cell_m: float = 10.0,
        playback_samples: int = 64,
        shadow_tile_cells: int | None = None,
        observation: str = "paper",
    ):
        self.num_bs = _checks.check_int("num_bs", num_bs, lo=1)
        self.num_macro = _checks.check_int("num_macro", num_macro, lo=0, hi=self.num_bs)
        self.max_users = _checks.check_int("max_users", max_users, lo=1)
        self.num_candidates = _checks.check_int(
            "num_candidates", num_candidates, lo=1, hi=self.num_bs
        )
        self.area_m = _checks.check_float("area_m", area_m, lo=0.0, hi=MAX_AREA_M, lo_open=True)
        self.shadow_cell_m = _checks.check_float(
            "shadow_cell_m", shadow_cell_m, lo=0.0, hi=self.area_m, lo_open=True
        )
        self.num_agents = self.max_users
        self.observation = _checks.check_choice("observation", observation, OBSERVATIONS)
        cover = max(2, int(np.ceil(self.area_m / self.shadow_cell_m)))
        self.shadow_tile_cells = _checks.check_int(
            "shadow_tile_cells",
            min(cover, DEFAULT_TILE_CELLS) if shadow_tile_cells is None else shadow_tile_cells,
            lo=2, hi=4096,
        )
        need = self.state_bytes()
        if need > MAX_STATE_BYTES:
            raise ValueError(
                f"shadow_tile_cells={self.shadow_tile_cells}, num_bs={self.num_bs},"
                f" max_users={self.max_users} need about {need / 2**20:.1f} MiB of state per "
                f"twin; allowed up to {MAX_STATE_BYTES / 2**20:.0f} MiB (MAX_STATE_BYTES)"
            )
        self.mobility, self.graph = generator.build_mobility(
            mobility, self.max_users, self.area_m, street_graph, playback_samples
        )
        mob = generator.default_mobility_params(self.mobility, self.area_m)  # outside jit
        self._default_bs_xy = generator.default_deployment(
            self.num_bs, self.num_macro, mob.area_min, mob.area_max, graph=self.graph
        )

    def state_bytes(self) -> int:
        """Estimated bytes of one twin's state, without the mobility state: the shadowing
        tile plus the per-user arrays (computed from the sizes alone, nothing allocated)."""
        u, b, n = self.max_users, self.num_bs, self.num_candidates
        per_user = 4 * b + 4 * n + n + 4 + 1  # sinr, candidates, mask, assoc, active
        return physics.shadow_bytes(b, self.shadow_tile_cells) + u * per_user + 4

    # ------------------------------------------------------------------ params
    def param_components(self):
        return {"mobility": self.mobility}

    @property
    def default_params(self) -> AssociationParams:
        """Defaults: 46/30 dBm macro/small cells at 25/10 m, 3.5 GHz, 20 MHz, 100 users
        (at most ``max_users``) at a fixed density, every-step decisions, handover cost 0.1,
        load_ref 10 users, 64-step episodes; built without validation (jit-safe)."""
        b, m = self.num_bs, self.num_macro
        is_macro = np.arange(b) < m
        f32 = jnp.float32
        return AssociationParams(
            bs_xy=jnp.asarray(self._default_bs_xy),
            tx_power_dbm=jnp.asarray(np.where(is_macro, 46.0, 30.0), f32),
            bs_height_m=jnp.asarray(np.where(is_macro, 25.0, 10.0), f32),
            shadow_sigma_db=jnp.asarray(
                np.where(is_macro, pathloss.SIGMA_SF_UMA_NLOS, pathloss.SIGMA_SF_UMI_NLOS), f32
            ),
            shadow_dcorr_m=jnp.asarray(np.where(is_macro, 50.0, 13.0), f32),
            fc_ghz=f32(3.5),
            bandwidth_hz=f32(20e6),
            noise_figure_db=f32(9.0),
            ue_height_m=f32(1.5),
            num_users=jnp.int32(min(100, self.max_users)),
            density_amp=f32(0.0),
            density_period=f32(64.0),
            churn=f32(0.0),
            decision_prob=f32(1.0),
            load_ref=f32(10.0),
            w_own=f32(1.0),
            w_net=f32(1.0),
            w_handover=f32(0.1),
            rate_ref_bps=f32(1e6),
            episode_length=jnp.int32(64),
            mobility=generator.default_mobility_params(self.mobility, self.area_m),
        )

    def check_params(self, params: AssociationParams, rules: Rules = CONCRETE) -> None:
        """The ranges of the table in :class:`AssociationParams`, then the mobility's rules."""
        b, arr = self.num_bs, rules.array
        arr("tx_power_dbm", params.tx_power_dbm, (b,), -50.0, 80.0)
        arr("bs_height_m", params.bs_height_m, (b,), 1.0, 300.0)
        arr("shadow_sigma_db", params.shadow_sigma_db, (b,), 0.0, 30.0)
        arr("shadow_dcorr_m", params.shadow_dcorr_m, (b,), 0.1)
        arr("fc_ghz", params.fc_ghz, (), 0.5, 100.0)
        arr("bandwidth_hz", params.bandwidth_hz, (), 0.0, 1e10, lo_open=True)
        arr("noise_figure_db", params.noise_figure_db, (), 0.0, 30.0)
        # 38.901's UMa/UMi range: below 1.5 m the breakpoint d'_BP = 4 h'_BS h'_UT f_c / c and
        # h_BS - h_UT can vanish together (both heights 1 m: a 270 dB pathloss, zero rates)
        arr("ue_height_m", params.ue_height_m, (), 1.5, 22.5)
        arr("num_users", params.num_users, (), 1, self.max_users, integer=True)
        arr("density_amp", params.density_amp, (), 0.0, 1.0)
        arr("density_period", params.density_period, (), 0.0, 1e9, lo_open=True)
        arr("churn", params.churn, (), 0.0, 1.0)
        arr("decision_prob", params.decision_prob, (), 0.0, 1.0)
        arr("load_ref", params.load_ref, (), 0.0, 1e6, lo_open=True)
        for name in ("w_own", "w_net", "w_handover"):
            arr(name, getattr(params, name), (), 0.0, 1e3)
        arr("rate_ref_bps", params.rate_ref_bps, (), 0.0, 1e12, lo_open=True)
        arr("episode_length", params.episode_length, (), 1, 2**30, integer=True)
        self.mobility.check_params(params.mobility, rules)
        arr("bs_xy", params.bs_xy, (b, 2))
        lo, hi = params.mobility.area_min, params.mobility.area_max
        pad = BS_AREA_MARGIN * (hi - lo)
        inside = (params.bs_xy >= lo - pad) & (params.bs_xy <= hi + pad)
        rules.require(
            inside, f"bs_xy has a BS outside the mobility area [{{}}, {{}}] widened by "
            f"{BS_AREA_MARGIN} of its sides (BS_AREA_MARGIN); bs_xy = {{}}", lo, hi, params.bs_xy,
        )

    # ------------------------------------------------------------------ spaces
    @property
    def feature_dim(self) -> int:
        """Width of one user's observation: ``3N`` (``"paper"``) or ``4N`` (``"rich"``), N =
        ``num_candidates`` (layout in the module docstring)."""
        return (4 if self.observation == "rich" else 3) * self.num_candidates

    def observation_space(self, params=None) -> Box:
        n, lim = self.num_candidates, physics.FEATURE_LIMIT
        lo, hi = [-lim, 0.0, 0.0, -lim], [lim, physics.LOAD_LIMIT, 1.0, lim]
        kinds = self.feature_dim // n
        lo = np.repeat(lo[:kinds], n).astype(np.float32)
        hi = np.repeat(hi[:kinds], n).astype(np.float32)
        return Box(lo, hi, (self.feature_dim,))

    def action_space(self, params=None) -> Discrete:
        return Discrete(self.num_candidates)

    def action_mask(self, state: AssociationState, params=None) -> jax.Array:
        return state.action_mask

    # ------------------------------------------------------------------ API
    def reset_env(self, key, params):
        """A new twin: draws its shadowing tile (the costly part) and users."""
        return self._start(
            key, params, lambda k: self.mobility.init(k, params.mobility),
            lambda k: physics.sample_shadow(k, params, self.num_bs, self.shadow_tile_cells,
                                            self.shadow_cell_m),
        )

    def reset_from(self, key, state, params):
        """The next episode of a twin (auto-resets): the shadowing tile is kept and re-placed
        at a random offset and symmetry, and the mobility model continues from
        ``state.mobility`` (``MobilityModel.reinit``: e.g. generated mobility renews its
        trajectory bank). Costs about one step."""
        return self._start(
            key, params, lambda k: self.mobility.reinit(k, state.mobility, params.mobility),
            lambda k: physics.replace_shadow(k, state.shadow),
        )

    def _start(self, key, params, init_mobility, init_shadow):
        """A new episode; ``init_mobility(key) -> mobility state``, ``init_shadow(key) ->
        shadowing tile``. Returns (obs, state)."""
        k_mob, k_shadow, k_tok, k_phase = jax.random.split(key, 4)
        mob = init_mobility(k_mob)
        shadow = init_shadow(k_shadow)
        token_u = jax.random.uniform(k_tok, (self.max_users,))
        phase = jax.random.uniform(k_phase)  # cycles of the density profile
        t0 = jnp.int32(0)
        target = generator.target_users(t0, phase, params, self.max_users)
        active = generator.initial_active(target, self.max_users)
        sinr = physics.sinr(mob.pos, shadow, params, self.num_macro)
        assoc = jnp.argmax(sinr, axis=-1).astype(jnp.int32)
        return self._observe(token_u, mob, shadow, active, assoc, sinr, t0, phase, params)

    def _observe(self, token_u, mob, shadow, active, assoc, sinr, t, phase, params):
        obs, cand, mask = physics.observe(token_u, active, assoc, sinr, params,
                                          self.num_candidates, self.observation == "rich")
        state = AssociationState(mobility=mob, shadow=shadow, active=active, assoc=assoc,
                                 sinr=sinr, candidates=cand, action_mask=mask, t=t,
                                 phase=phase)
        return obs, state

    def chosen_bs(self, state: AssociationState, action: jax.Array) -> jax.Array:
        """BS index ``[U]`` chosen by ``action [U]`` after the rule for illegal actions."""
        action = legal_action(self.action_space(), jnp.asarray(action), state.action_mask)
        return jnp.take_along_axis(state.candidates, action[:, None], axis=-1)[:, 0]

    def step_env(self, key, state: AssociationState, action, params):
        k_mob, k_u = jax.random.split(key)
        # one draw for churn and decision tokens: each random call is a loop of its own on CPU
        churn_u, token_u = jax.random.uniform(k_u, (2, self.max_users))
        active = state.active
        assoc = self.chosen_bs(state, action)
        rate, load = link.load_coupled_rate(state.sinr, assoc, params.bandwidth_hz, active)
        util = physics.log_util(rate, params)
        handover = active & (assoc != state.assoc)
        n_act = jnp.maximum(active.sum(), 1).astype(jnp.float32)
        net_util = jnp.sum(jnp.where(active, util, 0.0)) / n_act
        reward = params.w_own * util + params.w_net * net_util - params.w_handover * handover
        reward = jnp.where(active, reward, 0.0)
        info = throughput_metrics(rate, active)
        info.update(
            handovers=handover.sum().astype(jnp.int32),
            load=load,
            sum_log_utility=jnp.sum(jnp.where(active, util, 0.0)),
        )

        mob = self.mobility.step(k_mob, state.mobility, params.mobility)
        t = state.t + 1
        target = generator.target_users(t, state.phase, params, self.max_users)
        active_next = generator.churn(churn_u, active, target, params, self.max_users)
        sinr = physics.sinr(mob.pos, state.shadow, params, self.num_macro)
        arrived = active_next & ~active
        assoc = jnp.where(arrived, jnp.argmax(sinr, axis=-1).astype(jnp.int32), assoc)
        obs, state = self._observe(token_u, mob, state.shadow, active_next, assoc, sinr, t,
                                   state.phase, params)
        info["agent_mask"] = active_next
        truncated = t >= params.episode_length
        return obs, state, reward, jnp.bool_(False), truncated, info
