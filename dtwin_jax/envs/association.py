"""``association-v0``: user association and load balancing in a heterogeneous network.

A deployment of ``num_bs`` base stations (the first ``num_macro`` are 3GPP TR 38.901 UMa
macro cells, the rest UMi street-canyon small cells) serves up to ``max_users`` users that
move by a mobility model of :mod:`dtwin_jax.mobility` chosen in the constructor. Every user
is an agent (shared policy): each step it picks its serving BS among its ``num_candidates``
strongest (by full-load SINR), and is paid a weighted sum of its own utility and the network
utility (mean log-throughput of the active users).

Physics of one step (``U`` users, ``B`` BSs)::

    PL[u, b]   = LOS-probability-weighted 38.901 pathloss (UMa for macro, UMi for small)
    X[u, b]    = spatially correlated shadowing field of BS b read at the user (dB)
    P[u, b]    = tx_power_dbm[b] - PL - X                         (received power, dBm)
    SINR[u, b] = P[u, b] / (sum_{b' != b} P[u, b'] + noise)       (every BS at full load)
    rate[u]    = bandwidth / n_b * log2(1 + SINR[u, b]),  b = assoc[u], n_b active users on b

The shadowing field is sampled at reset (the expensive part of reset), so episodes of one
twin see one shadowing realisation; a new episode draws new users, trajectories and field.

Time line of ``step``: the action applies to the positions (and SINR) that the agent saw,
rates and rewards are computed there, then users move, leave and arrive, and the next
observation is computed at the new positions.

Observation of user ``u`` (``features [U, 4 N]`` float32, N = ``num_candidates``), for
candidate ``k`` (BSs sorted by decreasing SINR)::

    features[u, k]        (SINR_dB - 10) / 20, clipped to [-10, 10]
    features[u, N + k]    load of the candidate / mean load (n_active / B), clipped to [0, 20]
    features[u, 2N + k]   1 if the candidate is the user's current BS, else 0
    features[u, 3N + k]   ln(rate if the user joined / rate_ref) / 5, clipped to [-10, 10]

``action_mask [U, N]``: a user may change BS only on steps where it holds a decision token
(probability ``decision_prob``, asynchronous decisions avoid all users herding at once);
otherwise only its current BS is legal. A user whose current BS left its candidate set must
hand over, and every candidate is legal. ``agent_mask [U]``: active users.

State fields (:class:`AssociationState`):

    mobility    mobility-model state; ``mobility.pos [U, 2]`` m
    shadow      ``ShadowingField`` with ``values [G_y, G_x, B]`` dB
    active      [U] bool     users present in the network
    assoc       [U] int32    serving BS of each user (kept for inactive users, unused)
    sinr        [U, B] f32   full-load SINR (linear) at the current positions
    candidates  [U, N] int32 BS index of each candidate, best first
    action_mask [U, N] bool  the mask of the last observation
    t           [] int32     step within the episode

``info`` (per step): ``throughput [U]`` bit/s (0 for inactive users), ``cell_edge`` (5th
percentile over active users), ``mean_throughput``, ``jain``, ``sum_log_utility``
(sum over active users of ln(rate / rate_ref)), ``handovers`` (count), ``num_active``,
``load [B]``, ``agent_mask [U]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dtwin_jax import _checks
from dtwin_jax.envs.base import AgentObs, MultiAgentEnv
from dtwin_jax.envs.spaces import Box, Discrete
from dtwin_jax.mobility import (
    GaussMarkov,
    MobilityModel,
    Playback,
    RandomWaypoint,
    StreetGraph,
    StreetVehicles,
    street_graph_grid,
)
from dtwin_jax.radio import fading, link, pathloss

MOBILITY_CHOICES = ("street", "waypoint", "gauss_markov", "playback")
_RATE_FLOOR_BPS = 1.0e3  # utilities use max(rate, 1 kbps)
_FEATURE_LIMIT = 10.0
_LOAD_LIMIT = 20.0
_DB_TO_LN = float(np.log(10.0) / 10.0)  # 10^(x/10) = exp(_DB_TO_LN x)
_DB_MAX = 300.0  # dB cap of linear powers, as in dtwin_jax.radio.link
_P_MAX_W = 1e30
_TINY = 1e-30


@struct.dataclass
class AssociationParams:
    """Continuous parameters of one twin (vmap over a stack of them for a batch of twins).

    Fields (B = num_bs):
        bs_xy [B, 2] m; tx_power_dbm [B] dBm; bs_height_m [B] m; shadow_sigma_db [B] dB;
        shadow_dcorr_m [B] m (decorrelation distance); fc_ghz [] GHz; bandwidth_hz [] Hz
        per BS; noise_figure_db [] dB; ue_height_m [] m;
        num_users [] int32: active users at reset (and mean count under churn), <= max_users;
        churn [] per-step probability that an active user leaves (arrivals keep the mean);
        decision_prob [] probability that a user may re-associate on a step;
        w_own, w_net, w_handover [] reward weights (own utility, network utility,
        penalty per own handover); rate_ref_bps [] utility reference rate;
        episode_length [] int32 steps; mobility: the mobility model's params.
    """

    bs_xy: jax.Array
    tx_power_dbm: jax.Array
    bs_height_m: jax.Array
    shadow_sigma_db: jax.Array
    shadow_dcorr_m: jax.Array
    fc_ghz: jax.Array
    bandwidth_hz: jax.Array
    noise_figure_db: jax.Array
    ue_height_m: jax.Array
    num_users: jax.Array
    churn: jax.Array
    decision_prob: jax.Array
    w_own: jax.Array
    w_net: jax.Array
    w_handover: jax.Array
    rate_ref_bps: jax.Array
    episode_length: jax.Array
    mobility: object


@struct.dataclass
class AssociationState:
    """See the module docstring for the fields."""

    mobility: object
    shadow: fading.ShadowingField
    active: jax.Array
    assoc: jax.Array
    sinr: jax.Array
    candidates: jax.Array
    action_mask: jax.Array
    t: jax.Array


def default_deployment(
    num_bs: int, num_macro: int, area_min, area_max, graph: StreetGraph | None = None, seed=0
) -> np.ndarray:
    """BS positions ``[num_bs, 2]`` (m): macros on a centred grid, small cells at street nodes.

    Macros sit at the centres of the cells of a near-square ``num_macro`` grid over the area.
    Small cells sit at distinct nodes of ``graph`` (uniform among them, NumPy ``seed``), or at
    uniform points of the area without a graph. Runs in NumPy (call outside jit).
    """
    num_bs = _checks.check_int("num_bs", num_bs, lo=1)
    num_macro = _checks.check_int("num_macro", num_macro, lo=0, hi=num_bs)
    lo = np.asarray(area_min, np.float64)
    hi = np.asarray(area_max, np.float64)
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(num_macro))) if num_macro else 1
    rows = int(np.ceil(num_macro / cols)) if num_macro else 1
    macro = [
        lo + (hi - lo) * np.array([(i % cols + 0.5) / cols, (i // cols + 0.5) / rows])
        for i in range(num_macro)
    ]
    num_small = num_bs - num_macro
    if graph is not None:
        nodes = np.asarray(graph.nodes)[np.asarray(graph.node_mask)]
        pick = rng.choice(len(nodes), size=num_small, replace=num_small > len(nodes))
        small = list(nodes[pick])
    else:
        small = list(lo + (hi - lo) * rng.uniform(size=(num_small, 2)))
    return np.asarray(macro + small, np.float32).reshape(num_bs, 2)


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
        area_m: side of the square area (m) used by the default mobility and shadowing grid.
        street_graph: road network of ``"street"`` mobility (default: 11 x 11 grid spanning
            the area).
        shadow_cell_m: grid spacing of the shadowing field (m); the grid covers the area.
        playback_samples: trajectory length T of ``"playback"`` mobility.
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
    ):
        self.num_bs = _checks.check_int("num_bs", num_bs, lo=1)
        self.num_macro = _checks.check_int("num_macro", num_macro, lo=0, hi=self.num_bs)
        self.max_users = _checks.check_int("max_users", max_users, lo=1)
        self.num_candidates = _checks.check_int(
            "num_candidates", num_candidates, lo=1, hi=self.num_bs
        )
        self.area_m = _checks.check_float("area_m", area_m, lo=0.0, lo_open=True)
        self.shadow_cell_m = _checks.check_float(
            "shadow_cell_m", shadow_cell_m, lo=0.0, hi=self.area_m, lo_open=True
        )
        self.num_agents = self.max_users
        self.graph = street_graph
        self.mobility = self._make_mobility(mobility, playback_samples)
        self.grid_shape = fading.grid_shape_for_area(self.area_m, self.area_m, self.shadow_cell_m)

    def _make_mobility(self, mobility, playback_samples: int) -> MobilityModel:
        if isinstance(mobility, MobilityModel):
            if mobility.num_users != self.max_users:
                raise ValueError(
                    f"mobility.num_users={mobility.num_users} must equal "
                    f"max_users={self.max_users}"
                )
            return mobility
        name = _checks.check_choice("mobility", mobility, MOBILITY_CHOICES)
        u = self.max_users
        if name == "street":
            if self.graph is None:
                spacing = self.area_m / 10.0
                self.graph = street_graph_grid(11, 11, spacing)
            return StreetVehicles(u, max_hops=8, graph=self.graph)
        if name == "waypoint":
            return RandomWaypoint(u)
        if name == "gauss_markov":
            return GaussMarkov(u)
        steps = _checks.check_int("playback_samples", playback_samples, lo=2)
        return Playback(u, steps, loop=True)

    # ------------------------------------------------------------------ params
    def _default_mobility_params(self):
        area = {"area_min": [0.0, 0.0], "area_max": [self.area_m, self.area_m]}
        if isinstance(self.mobility, StreetVehicles):
            return self.mobility.make_params(speed_min=5.0, speed_max=15.0)
        if isinstance(self.mobility, RandomWaypoint):
            return self.mobility.make_params(speed_min=1.0, speed_max=15.0, pause_max=5.0, **area)
        if isinstance(self.mobility, GaussMarkov):
            return self.mobility.make_params(mean_speed=10.0, speed_std=3.0, **area)
        if isinstance(self.mobility, Playback):
            return self.mobility.make_params(
                traj=np.full((self.max_users, self.mobility.num_samples, 2), self.area_m / 2),
                **area,
            )
        return self.mobility.default_params()

    @property
    def default_params(self) -> AssociationParams:
        mob = self._default_mobility_params()
        b, m = self.num_bs, self.num_macro
        is_macro = np.arange(b) < m
        bs_xy = default_deployment(b, m, mob.area_min, mob.area_max, graph=self.graph)
        return AssociationParams(
            bs_xy=jnp.asarray(bs_xy),
            tx_power_dbm=jnp.asarray(np.where(is_macro, 46.0, 30.0), jnp.float32),
            bs_height_m=jnp.asarray(np.where(is_macro, 25.0, 10.0), jnp.float32),
            shadow_sigma_db=jnp.asarray(
                np.where(is_macro, pathloss.SIGMA_SF_UMA_NLOS, pathloss.SIGMA_SF_UMI_NLOS),
                jnp.float32,
            ),
            shadow_dcorr_m=jnp.asarray(np.where(is_macro, 50.0, 13.0), jnp.float32),
            fc_ghz=jnp.float32(3.5),
            bandwidth_hz=jnp.float32(20e6),
            noise_figure_db=jnp.float32(9.0),
            ue_height_m=jnp.float32(1.5),
            num_users=jnp.int32(min(100, self.max_users)),
            churn=jnp.float32(0.0),
            decision_prob=jnp.float32(0.25),
            w_own=jnp.float32(1.0),
            w_net=jnp.float32(1.0),
            w_handover=jnp.float32(0.0),
            rate_ref_bps=jnp.float32(1e6),
            episode_length=jnp.int32(64),
            mobility=mob,
        )

    def make_params(self, **overrides) -> AssociationParams:
        """Default params with ``overrides`` (validated; call outside jit).

        ``mobility`` may be a dict of overrides for the mobility model's ``make_params``.
        """
        params = self.default_params
        names = set(params.__dataclass_fields__)
        updates = {}
        for name, value in overrides.items():
            if name not in names:
                raise ValueError(
                    f"AssociationEnv has no parameter {name!r}; allowed {sorted(names)}"
                )
            if name == "mobility":
                updates[name] = (
                    self.mobility.make_params(**value) if isinstance(value, dict) else value
                )
                continue
            updates[name] = _checks.cast_like(name, value, getattr(params, name))
        params = params.replace(**updates)
        self.check_params(params)
        return params

    def check_params(self, params: AssociationParams) -> None:
        """Raise ValueError naming the field if concrete ``params`` are invalid."""
        b = self.num_bs
        _checks.check_array("bs_xy", params.bs_xy, shape=(b, 2))
        _checks.check_array("tx_power_dbm", params.tx_power_dbm, shape=(b,), lo=-50, hi=80)
        _checks.check_array("bs_height_m", params.bs_height_m, shape=(b,), lo=1.0, hi=300.0)
        _checks.check_array("shadow_sigma_db", params.shadow_sigma_db, shape=(b,), lo=0, hi=30)
        _checks.check_array("shadow_dcorr_m", params.shadow_dcorr_m, shape=(b,), lo=0.1)
        _checks.check_float("fc_ghz", float(params.fc_ghz), lo=0.5, hi=100.0)
        _checks.check_float("bandwidth_hz", float(params.bandwidth_hz), lo=0.0, lo_open=True)
        _checks.check_float("noise_figure_db", float(params.noise_figure_db), lo=0.0, hi=30.0)
        _checks.check_float("ue_height_m", float(params.ue_height_m), lo=1.0, hi=22.5)
        _checks.check_int("num_users", int(params.num_users), lo=1, hi=self.max_users)
        _checks.check_float("churn", float(params.churn), lo=0.0, hi=1.0)
        _checks.check_float("decision_prob", float(params.decision_prob), lo=0.0, hi=1.0)
        for name in ("w_own", "w_net", "w_handover"):
            _checks.check_float(name, float(getattr(params, name)), lo=0.0)
        _checks.check_float("rate_ref_bps", float(params.rate_ref_bps), lo=0.0, lo_open=True)
        _checks.check_int("episode_length", int(params.episode_length), lo=1)
        self.mobility.check_params(params.mobility)

    # ------------------------------------------------------------------ spaces
    @property
    def feature_dim(self) -> int:
        return 4 * self.num_candidates

    def observation_space(self, params=None) -> Box:
        lo = np.concatenate([np.full(n, v) for n, v in self._bounds(0)]).astype(np.float32)
        hi = np.concatenate([np.full(n, v) for n, v in self._bounds(1)]).astype(np.float32)
        return Box(lo, hi, (self.feature_dim,))

    def _bounds(self, which: int):
        n = self.num_candidates
        lim = _FEATURE_LIMIT
        return [(n, (-lim, lim)[which]), (n, (0.0, _LOAD_LIMIT)[which]), (n, (0.0, 1.0)[which]),
                (n, (-lim, lim)[which])]

    def action_space(self, params=None) -> Discrete:
        return Discrete(self.num_candidates)

    # ------------------------------------------------------------------ physics
    def sinr(self, pos: jax.Array, shadow: fading.ShadowingField, params) -> jax.Array:
        """Full-load SINR (linear) ``[U, B]`` of users at ``pos [U, 2]`` (m).

        As :func:`~dtwin_jax.radio.link.full_load_sinr`, with the interference from the other
        BSs summed by one matmul with ``1 - I`` (exact zeros, no ``total - own`` cancellation),
        which XLA runs far faster on CPU than unrolled sums over a short minor axis.
        """
        rx = self.rx_power_w(pos, shadow, params)
        others = 1.0 - jnp.eye(self.num_bs, dtype=jnp.float32)
        interference = jnp.matmul(rx, others, precision=jax.lax.Precision.HIGHEST)
        noise = jnp.maximum(self._noise_w(params), 0.0)
        return jnp.minimum(rx / jnp.maximum(interference + noise, _TINY), link.SINR_MAX)

    def rx_power_w(self, pos: jax.Array, shadow: fading.ShadowingField, params) -> jax.Array:
        """Received power (W) ``[U, B]``: tx power - expected pathloss - shadowing.

        The expected pathloss (:func:`~dtwin_jax.radio.pathloss.expected_pathloss`) is folded
        into the linear power: since ``PL_NLOS >= PL_LOS`` in 38.901,
        ``P = 10^((P_tx - PL_LOS - X)/10 - 3) (p + (1 - p) 10^(-(PL_NLOS - PL_LOS)/10))``,
        two exponentials per link instead of a log-sum-exp and a power.
        """
        m = self.num_macro
        h_ut = params.ue_height_m
        d2, d3 = link.pairwise_distances(pos, params.bs_xy, h_ut, params.bs_height_m)
        fc = params.fc_ghz
        parts = []
        for sl, los, nlos, p_los in (
            (slice(0, m), pathloss.uma_los, pathloss.uma_nlos, pathloss.los_probability_uma),
            (slice(m, None), pathloss.umi_los, pathloss.umi_nlos, pathloss.los_probability_umi),
        ):
            h = params.bs_height_m[sl]
            if h.shape[0]:
                parts.append((los(d3[:, sl], fc, h, h_ut), nlos(d3[:, sl], fc, h, h_ut),
                              p_los(d2[:, sl], h_ut)))
        pl_los, pl_nlos, p = (jnp.concatenate(x, axis=-1) for x in zip(*parts, strict=True))
        shadow_db = fading.shadowing_at(shadow, pos)
        budget_dbw = jnp.minimum(params.tx_power_dbm - 30.0 - pl_los - shadow_db, _DB_MAX)
        nlos_rel = jnp.exp(-_DB_TO_LN * jnp.maximum(pl_nlos - pl_los, 0.0))
        gain_rel = p + (1.0 - p) * nlos_rel  # in (0, 1]
        return jnp.clip(jnp.exp(_DB_TO_LN * budget_dbw) * gain_rel, 0.0, _P_MAX_W)

    def _noise_w(self, params) -> jax.Array:
        return link.thermal_noise_w(params.bandwidth_hz, params.noise_figure_db)

    def _sample_shadow(self, key, params) -> fading.ShadowingField:
        return fading.sample_shadowing_field(
            key,
            self.num_bs,
            self.grid_shape,
            params.mobility.area_min,
            jnp.float32(self.shadow_cell_m),
            params.shadow_sigma_db,
            params.shadow_dcorr_m,
        )

    # ------------------------------------------------------------------ API
    def reset_env(self, key, params):
        return self._start(key, params, lambda k: self.mobility.init(k, params.mobility))

    def reset_from(self, key, state, params):
        """Like :meth:`reset_env`, but the mobility model continues from ``state.mobility``
        (``MobilityModel.reinit``: e.g. generated mobility renews its trajectory bank)."""
        return self._start(
            key, params, lambda k: self.mobility.reinit(k, state.mobility, params.mobility)
        )

    def _start(self, key, params, init_mobility):
        """A new episode; ``init_mobility(key) -> mobility state``. Returns (obs, state)."""
        k_mob, k_shadow, k_tok = jax.random.split(key, 3)
        mob = init_mobility(k_mob)
        shadow = self._sample_shadow(k_shadow, params)
        active = jnp.arange(self.max_users) < params.num_users
        sinr = self.sinr(mob.pos, shadow, params)
        assoc = jnp.argmax(sinr, axis=-1).astype(jnp.int32)
        token_u = jax.random.uniform(k_tok, (self.max_users,))
        return self._observe(token_u, mob, shadow, active, assoc, sinr, jnp.int32(0), params)

    def _observe(self, token_u, mob, shadow, active, assoc, sinr, t, params):
        """Candidates, mask and features at the current positions; returns (obs, state).

        ``token_u [U]``: uniforms in [0, 1) that hand out the decision tokens.
        """
        top, sel = _top_candidates(sinr, self.num_candidates)  # [U, N], [U, N, B]
        b_idx = jnp.arange(self.num_bs, dtype=jnp.int32)
        cand = jnp.sum(jnp.where(sel, b_idx, 0), axis=-1)  # [U, N]
        is_cur = cand == assoc[:, None]
        has_cur = is_cur.any(-1)
        token = token_u < params.decision_prob
        free = token | ~has_cur
        mask = free[:, None] | is_cur

        on_bs = (assoc[:, None] == b_idx) & active[:, None]  # [U, B]
        load = on_bs.sum(0).astype(jnp.float32)  # [B]
        n_act = jnp.maximum(active.sum(), 1).astype(jnp.float32)
        cand_load = jnp.sum(jnp.where(sel, load, 0.0), axis=-1)  # [U, N]
        rel_load = cand_load / (n_act / self.num_bs)
        join_load = cand_load + 1.0 - is_cur.astype(jnp.float32)
        share = params.bandwidth_hz / jnp.maximum(join_load, 1.0)
        rate_join = share * link.spectral_efficiency(top)
        top_db = link.linear_to_db(top)
        feats = jnp.concatenate(
            [
                jnp.clip((top_db - 10.0) / 20.0, -_FEATURE_LIMIT, _FEATURE_LIMIT),
                jnp.clip(rel_load, 0.0, _LOAD_LIMIT),
                is_cur.astype(jnp.float32),
                jnp.clip(_log_util(rate_join, params) / 5.0, -_FEATURE_LIMIT, _FEATURE_LIMIT),
            ],
            axis=-1,
        )
        obs = AgentObs(features=feats, action_mask=mask, agent_mask=active)
        state = AssociationState(
            mobility=mob,
            shadow=shadow,
            active=active,
            assoc=assoc,
            sinr=sinr,
            candidates=cand,
            action_mask=mask,
            t=t,
        )
        return obs, state

    def chosen_bs(self, state: AssociationState, action: jax.Array) -> jax.Array:
        """BS index ``[U]`` chosen by ``action [U]`` (illegal actions keep the first legal one)."""
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.num_candidates - 1)
        legal = jnp.take_along_axis(state.action_mask, action[:, None], axis=-1)[:, 0]
        action = jnp.where(legal, action, jnp.argmax(state.action_mask, axis=-1))
        return jnp.take_along_axis(state.candidates, action[:, None], axis=-1)[:, 0]

    def step_env(self, key, state: AssociationState, action, params):
        k_mob, k_u = jax.random.split(key)
        # one draw for churn and decision tokens: each random call is a loop of its own on CPU
        churn_u, token_u = jax.random.uniform(k_u, (2, self.max_users))
        active = state.active
        assoc = self.chosen_bs(state, action)
        rate, load = link.load_coupled_rate(state.sinr, assoc, params.bandwidth_hz, active)
        util = _log_util(rate, params)
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
        active_next = _churn(churn_u, active, params, self.max_users)
        sinr = self.sinr(mob.pos, state.shadow, params)
        arrived = active_next & ~active
        assoc = jnp.where(arrived, jnp.argmax(sinr, axis=-1).astype(jnp.int32), assoc)
        t = state.t + 1
        obs, state = self._observe(token_u, mob, state.shadow, active_next, assoc, sinr, t,
                                   params)
        info["agent_mask"] = active_next
        truncated = t >= params.episode_length
        return obs, state, reward, jnp.bool_(False), truncated, info


def _top_candidates(sinr: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """The ``n`` largest entries of ``sinr [U, B]`` per user, best first (ties: lower index
    first, as ``lax.top_k``): values ``[U, n]`` and one-hot selections ``[U, n, B]``.

    ``n`` rounds of a masked argmax: much faster than ``lax.top_k`` for a small B on CPU.
    """
    b_idx = jnp.arange(sinr.shape[-1])
    vals, sels = [], []
    cur = sinr
    for _ in range(n):
        best = jnp.argmax(cur, axis=-1)
        vals.append(jnp.max(cur, axis=-1))
        sel = b_idx == best[:, None]
        sels.append(sel)
        cur = jnp.where(sel, -jnp.inf, cur)
    return jnp.stack(vals, axis=-1), jnp.stack(sels, axis=-2)


def _log_util(rate: jax.Array, params) -> jax.Array:
    """``ln(max(rate, 1 kbps) / rate_ref)``."""
    return jnp.log(jnp.maximum(rate, _RATE_FLOOR_BPS) / params.rate_ref_bps)


def _churn(u: jax.Array, active: jax.Array, params, max_users: int) -> jax.Array:
    """Departures with probability ``churn``; arrivals into free slots keep the mean count.

    ``u [U]``: uniforms in [0, 1), one per user slot."""
    n = params.num_users.astype(jnp.float32)
    free = jnp.maximum(max_users - n, 1.0)
    p_arrive = jnp.clip(params.churn * n / free, 0.0, 1.0)
    return jnp.where(active, u >= params.churn, u < p_arrive)


def masked_quantile(x: jax.Array, mask: jax.Array, q: float) -> jax.Array:
    """Quantile ``q`` of ``x [..., U]`` over the entries where ``mask``; linear interpolation
    (NumPy's default). 0 when the mask is empty."""
    n = mask.sum(-1)
    xs = jnp.sort(jnp.where(mask, x, jnp.inf), axis=-1)
    pos = q * jnp.maximum(n - 1, 0).astype(jnp.float32)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, jnp.maximum(n - 1, 0))
    v_lo = jnp.take_along_axis(xs, lo[..., None], axis=-1)[..., 0]
    v_hi = jnp.take_along_axis(xs, hi[..., None], axis=-1)[..., 0]
    out = v_lo + (pos - lo) * (v_hi - v_lo)
    return jnp.where(n > 0, out, 0.0)


def throughput_metrics(rate: jax.Array, active: jax.Array) -> dict:
    """Per-user ``throughput`` (0 for inactive), ``cell_edge`` (5th percentile),
    ``mean_throughput``, ``jain`` and ``num_active`` over the active users of ``rate [..., U]``."""
    rate = jnp.where(active, rate, 0.0)
    n = active.sum(-1)
    nf = jnp.maximum(n, 1).astype(jnp.float32)
    total = rate.sum(-1)
    jain = total * total / jnp.maximum(nf * jnp.sum(rate * rate, -1), 1e-30)
    return {
        "throughput": rate,
        "cell_edge": masked_quantile(rate, active, 0.05),
        "mean_throughput": total / nf,
        "jain": jnp.where(n > 0, jain, 0.0),
        "num_active": n.astype(jnp.int32),
    }


# ---------------------------------------------------------------------- baseline policies
# A policy is ``policy(key, obs, state, params) -> action [U]`` (candidate indices) for ONE
# twin; ``jax.vmap`` it over a batch. Baselines read the state (SINR, loads); learned
# policies read ``obs`` only.


def target_to_action(state: AssociationState, target_bs: jax.Array) -> jax.Array:
    """Candidate index ``[U]`` of the wanted BS ``target_bs [U]``; where that BS is not a legal
    candidate, the legal candidate with the highest SINR (the first legal one)."""
    hit = (state.candidates == target_bs[:, None]) & state.action_mask
    first_legal = jnp.argmax(state.action_mask, axis=-1)
    return jnp.where(hit.any(-1), jnp.argmax(hit, axis=-1), first_legal).astype(jnp.int32)


def _candidate_scores_policy(score_fn):
    def policy(key, obs: AgentObs, state: AssociationState, params) -> jax.Array:
        scores = score_fn(key, obs, state, params)
        return jnp.argmax(jnp.where(obs.action_mask, scores, -jnp.inf), axis=-1).astype(jnp.int32)

    return policy


def max_sinr_policy(env: AssociationEnv):
    """Serve every user by its highest-SINR legal candidate (candidates are sorted by SINR)."""
    del env
    return _candidate_scores_policy(
        lambda key, obs, state, params: -jnp.arange(obs.action_mask.shape[-1], dtype=jnp.float32)
    )


def rsrp_bias_policy(env: AssociationEnv, small_cell_bias_db: float = 6.0):
    """Max RSRP with cell range expansion: small cells get ``small_cell_bias_db`` extra.

    RSRP is read from the full-load SINR: ``P_b = SINR_b (I_tot + N) / (1 + SINR_b)``, so per
    user ``RSRP_dB(b) = 10 log10(SINR_b / (1 + SINR_b)) + const``.
    """
    bias_db = _checks.check_float("small_cell_bias_db", small_cell_bias_db, lo=-30.0, hi=60.0)
    bias = jnp.where(jnp.arange(env.num_bs) < env.num_macro, 0.0, bias_db)

    def scores(key, obs, state, params):
        s = jnp.take_along_axis(state.sinr, state.candidates, axis=-1)
        return link.linear_to_db(s / (1.0 + s)) + bias[state.candidates]

    return _candidate_scores_policy(scores)


def random_policy(env: AssociationEnv):
    """A uniformly random legal candidate for every user."""
    del env
    return _candidate_scores_policy(
        lambda key, obs, state, params: jax.random.uniform(key, obs.action_mask.shape)
    )


def greedy_rate_policy(env: AssociationEnv):
    """Selfish best response: the candidate with the highest rate if the user joined it
    (given the current loads); a load-aware heuristic, not a paper baseline."""
    n = env.num_candidates
    return _candidate_scores_policy(lambda key, obs, state, params: obs.features[:, 3 * n:])


def association_policy(association_fn):
    """Wrap a centralised association ``association_fn(sinr [U, B], active [U], params) ->
    bs [U]`` (e.g. a load-balancing algorithm) as a policy in candidate index space."""

    def policy(key, obs: AgentObs, state: AssociationState, params) -> jax.Array:
        return target_to_action(state, association_fn(state.sinr, state.active, params))

    return policy
