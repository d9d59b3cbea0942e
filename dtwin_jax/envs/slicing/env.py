"""``slicing-v0``: bandwidth slicing at one BS, simulated packet by packet.

The environment of Hua et al., "GAN-powered Deep Distributional RL for Resource Management in
Network Slicing" (IEEE JSAC 2020), used by Zhang et al. (arXiv 2311.16876); parameters in
``PARAMS.md`` section 3. One BS serves U = 100 users of three slices (VoLTE, video, URLLC;
slice drawn per user with p ~ (6, 6, 1)), uniform in a 80 m square, fixed per episode. Every
decision splits the total bandwidth among the slices; the next ``num_slots`` = 2000 slots of
0.5 ms (1 s) are then simulated packet by packet inside one ``lax.scan``
(:mod:`.physics`: arrivals, per-slice round robin over 180 kHz RBs, rates, FIFO service, SLA
accounting) from empty queues. Traffic: :mod:`.traffic`.

Action: ``Discrete(K)``, index into the static table of splits ``(volte, video, urllc)`` in
bandwidth units (``unit_hz``), every slice >= 1 unit, summing to ``bandwidth_hz / unit_hz``
units, in lexicographic order (the authors' order): 10 MHz / 1 MHz -> 36 actions, 10 MHz /
200 kHz -> 1176, 20 MHz / 200 kHz -> 4851. ``action_from_split`` / ``split_from_action``
convert. Slice k gets ``floor(split_k * unit_hz / 180 kHz)`` RBs. Illegal actions (out of
range) follow :func:`dtwin_jax.envs.base.legal_action`: action 0.

Observation ``[3]`` f32 (chosen, the authors' normaliser): the packets that arrived per slice
in the last window, z-scored across the three slices, ``(n - mean(n)) / std(n)`` (population
std; all zeros when the three counts are equal, and at reset, before any window); each entry
lies in ``[-sqrt 2, sqrt 2]``. The raw counts are ``info["arrived"]``.

Utility and reward (``c1 = reward_high``, ``c2 = reward_low``)::

    SSR_k   = satisfied_k / arrived_k   (1 when nothing arrived: chosen)
    utility = se_weight * SE + sum_k ssr_weights_k * SSR_k
    reward  = +1 if utility >= c1, -1 if utility <= c2, else 0

``urllc="small"`` (6.4 ... 32 KB packets): weights (1, 1, 1), c1 = 6.5, c2 = 4.5;
``urllc="large"`` (0.3 ... 0.7 MB): weights (1, 4, 6), c1 = 5.7, c2 = 3.

``info`` (per decision; ``[3]`` fields are per slice):

    utility [] f32              the utility above
    ssr [3] f32                 SLA satisfaction ratio per slice, in [0, 1]
    se [] f32 bit/s/Hz          mean over slots of sum of user rates / total bandwidth
    arrived [3] int32           packets generated in the window
    delivered [3] int32         packets fully transmitted
    satisfied [3] int32         delivered packets that met the SLA
    dropped [3] int32           packets left queued at the end and cleared
                                (arrived = delivered + dropped)
    blocked [3] int32           user-slots in which a packet was due but the queue was full
    rbs [3] int32               RBs of each slice under the (legalised) action

Episodes (chosen): ``episode_length`` decisions (default 200), truncated, never terminated;
a new episode draws new users (positions, slices) and arrival phases. Arrival countdowns carry
over decisions within an episode; queues and round-robin pointers do not.

State: :class:`~dtwin_jax.envs.slicing.types.SlicingState`; params:
:class:`~dtwin_jax.envs.slicing.types.SlicingParams`.
"""

from __future__ import annotations

import math
from itertools import product

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.envs.base import Environment, legal_action
from dtwin_jax.envs.slicing import draws, physics, traffic
from dtwin_jax.envs.slicing.types import SlicingParams, SlicingState
from dtwin_jax.envs.spaces import Box, Discrete

URLLC_CHOICES = ("small", "large")
MAX_UNITS = 400
"""Largest number of bandwidth units (``bandwidth_hz / unit_hz``): 79,401 actions."""
_KB, _MB = 8e3, 8e6  # bits
_URLLC_DEFAULTS = {  # sizes (bit), ssr weights, c1, c2
    "small": ((6.4 * _KB, 12.8 * _KB, 19.2 * _KB, 25.6 * _KB, 32 * _KB), (1, 1, 1), 6.5, 4.5),
    "large": ((0.3 * _MB, 0.4 * _MB, 0.5 * _MB, 0.6 * _MB, 0.7 * _MB), (1, 4, 6), 5.7, 3.0),
}
OBS_LIMIT = math.sqrt(2.0)
"""Bound of the z-scored observation (the largest |z| of three numbers)."""


def split_table(num_units: int) -> np.ndarray:
    """``[K, 3]`` int64: every ``(volte, video, urllc)`` in units, each >= 1, summing to
    ``num_units``, in lexicographic order; ``K = (num_units - 1)(num_units - 2) / 2``."""
    rows = [(a, b, num_units - a - b) for a, b in product(range(1, num_units), repeat=2)
            if num_units - a - b >= 1]
    return np.asarray(rows, np.int64).reshape(-1, 3)


def zscore(arrived: jax.Array) -> jax.Array:
    """``[3]`` f32: ``(n - mean) / std`` of the counts ``arrived [3]``; zeros if all equal."""
    x = arrived.astype(jnp.float32)
    centred = x - jnp.mean(x)
    std = jnp.sqrt(jnp.mean(centred * centred))
    z = jnp.where(std > 0, centred / jnp.where(std > 0, std, 1.0), 0.0)
    return jnp.clip(z, -OBS_LIMIT, OBS_LIMIT)


class SlicingEnv(Environment):
    """Network slicing twin (see the module docstring).

    Args:
        num_users: U users (static), 1 ... 1023.
        queue_len: Q packets per user queue, 1 ... 64.
        num_slots: S slots per decision, 1 ... 200,000.
        bandwidth_hz: total bandwidth (Hz), an integer number of Hz.
        unit_hz: bandwidth unit of the split (Hz); ``bandwidth_hz`` must be a multiple of it,
            with 3 ... ``MAX_UNITS`` units, and a unit must hold one 180 kHz RB at least.
        urllc: ``"small"`` or ``"large"`` URLLC packets (sizes, utility weights, thresholds).
        scan_unroll: unroll factor of the slot scan (speed only), 1 ... 64.
    """

    def __init__(
        self,
        num_users: int = 100,
        queue_len: int = 5,
        num_slots: int = 2000,
        bandwidth_hz: float = 10e6,
        unit_hz: float = 1e6,
        urllc: str = "small",
        scan_unroll: int = 1,
    ):
        self.num_users = _checks.check_int("num_users", num_users, lo=1, hi=physics.MAX_USERS)
        self.queue_len = _checks.check_int("queue_len", queue_len, lo=1, hi=64)
        self.num_slots = _checks.check_int("num_slots", num_slots, lo=1, hi=200_000)
        self.scan_unroll = _checks.check_int("scan_unroll", scan_unroll, lo=1, hi=64)
        self.urllc = _checks.check_choice("urllc", urllc, URLLC_CHOICES)
        bw = _checks.check_float("bandwidth_hz", bandwidth_hz, lo=0.0, hi=1e12, lo_open=True)
        unit = _checks.check_float("unit_hz", unit_hz, lo=physics.RB_HZ, hi=bw)
        if bw != round(bw) or unit != round(unit):
            raise ValueError(f"bandwidth_hz={bw} and unit_hz={unit} must be whole numbers of Hz")
        self.bandwidth_hz, self.unit_hz = int(round(bw)), int(round(unit))
        if self.bandwidth_hz % self.unit_hz:
            raise ValueError(f"bandwidth_hz={bw} must be a multiple of unit_hz={unit}")
        self.num_units = _checks.check_int("bandwidth_hz / unit_hz",
                                           self.bandwidth_hz // self.unit_hz, lo=3, hi=MAX_UNITS)
        self.splits = split_table(self.num_units)  # [K, 3] units
        self.rbs_table = (self.splits * self.unit_hz) // int(physics.RB_HZ)  # [K, 3] RBs
        self._split_index = {tuple(int(v) for v in s): i for i, s in enumerate(self.splits)}

    @property
    def num_actions(self) -> int:
        """``K``: number of bandwidth splits (rows of ``splits [K, 3]``), the actions."""
        return len(self.splits)

    # ------------------------------------------------------------------ params
    @property
    def default_params(self) -> SlicingParams:
        """PARAMS.md section 3 values for the chosen URLLC packet sizes (built without
        validation, jit-safe)."""
        sizes, weights, c1, c2 = _URLLC_DEFAULTS[self.urllc]
        f32 = jnp.float32
        return SlicingParams(
            area_half_m=f32(40.0), tx_power_dbm=f32(46.0), ue_gain_db=f32(20.0),
            shadow_sigma_db=f32(8.0), noise_dbm_hz=f32(-174.0), rate_factor=f32(64.0),
            slot_s=f32(0.5e-3), slice_probs=jnp.asarray([6 / 13, 6 / 13, 1 / 13], f32),
            volte_size_bits=f32(320.0), volte_gap_max_s=f32(0.16), video_shape=f32(1.2),
            video_size_scale_bits=f32(800.0), video_size_cap_bits=f32(2000.0),
            video_gap_scale_s=f32(6e-3), video_gap_cap_s=f32(12.5e-3),
            urllc_sizes_bits=jnp.asarray(sizes, f32), urllc_gap_mean_s=f32(0.18),
            sla_rate_bps=jnp.asarray([51e3, 100e6, 10e6], f32),
            sla_delay_s=jnp.asarray([10e-3, 10e-3, 3e-3], f32),
            se_weight=f32(0.01), ssr_weights=jnp.asarray(weights, f32),
            reward_high=f32(c1), reward_low=f32(c2), episode_length=jnp.int32(200),
        )

    def check_params(self, params: SlicingParams, rules: Rules = CONCRETE) -> None:
        """Every field's range (named in the messages); see :mod:`dtwin_jax._params`."""
        arr = rules.array
        arr("area_half_m", params.area_half_m, (), 0.0, 1e5, lo_open=True)
        arr("tx_power_dbm", params.tx_power_dbm, (), -50.0, 100.0)
        arr("ue_gain_db", params.ue_gain_db, (), -50.0, 50.0)
        arr("shadow_sigma_db", params.shadow_sigma_db, (), 0.0, 30.0)
        arr("noise_dbm_hz", params.noise_dbm_hz, (), -250.0, -100.0)
        arr("rate_factor", params.rate_factor, (), 0.0, 1e4, lo_open=True)
        arr("slot_s", params.slot_s, (), 0.0, 1.0, lo_open=True)
        arr("slice_probs", params.slice_probs, (3,), 0.0, 1.0)
        rules.require(abs(rules.xp.sum(params.slice_probs) - 1.0) <= 1e-5,
                      "slice_probs must sum to 1, got sum {}", rules.xp.sum(params.slice_probs))
        for name in ("volte_size_bits", "video_size_scale_bits", "video_size_cap_bits"):
            arr(name, getattr(params, name), (), 0.0, 1e10, lo_open=True)
        for name in ("volte_gap_max_s", "video_gap_scale_s", "video_gap_cap_s",
                     "urllc_gap_mean_s"):
            arr(name, getattr(params, name), (), 0.0, 1e4, lo_open=True)
        arr("video_shape", params.video_shape, (), 0.0, 100.0, lo_open=True)
        arr("urllc_sizes_bits", params.urllc_sizes_bits, (None,), 0.0, 1e10, lo_open=True)
        if params.urllc_sizes_bits.shape[0] < 1:
            raise ValueError("urllc_sizes_bits must hold at least one size")
        arr("sla_rate_bps", params.sla_rate_bps, (3,), 0.0, 1e12)
        arr("sla_delay_s", params.sla_delay_s, (3,), 0.0, 1e4, lo_open=True)
        arr("se_weight", params.se_weight, (), 0.0, 1e3)
        arr("ssr_weights", params.ssr_weights, (3,), 0.0, 1e3)
        arr("reward_high", params.reward_high, (), -1e6, 1e6)
        arr("reward_low", params.reward_low, (), -1e6, 1e6)
        rules.require(params.reward_low <= params.reward_high,
                      "reward_low (c2 = {}) must be <= reward_high (c1 = {})",
                      params.reward_low, params.reward_high)
        arr("episode_length", params.episode_length, (), 1, 2**30, integer=True)

    # ------------------------------------------------------------------ spaces and actions
    def observation_space(self, params=None) -> Box:
        return Box(np.full(3, -OBS_LIMIT, np.float32), np.full(3, OBS_LIMIT, np.float32), (3,))

    def action_space(self, params=None) -> Discrete:
        return Discrete(self.num_actions)

    def action_from_split(self, split) -> int:
        """Action index of ``split = (volte, video, urllc)`` in bandwidth units (ints, each
        >= 1, summing to ``num_units``)."""
        key = tuple(_checks.check_int(f"split[{i}]", v, lo=1) for i, v in enumerate(split))
        if len(key) != 3 or key not in self._split_index:
            raise ValueError(f"split={tuple(split)} must be 3 ints >= 1 summing to "
                             f"{self.num_units} units of {self.unit_hz} Hz")
        return self._split_index[key]

    def split_from_action(self, action):
        """``[..., 3]`` split in units of ``action [...]`` (int or int array; legal values)."""
        if isinstance(action, (int, np.integer)):
            _checks.check_int("action", action, lo=0, hi=self.num_actions - 1)
            return tuple(int(v) for v in self.splits[action])
        return jnp.asarray(self.splits, jnp.int32)[jnp.asarray(action)]

    def rbs_from_action(self, action: jax.Array) -> jax.Array:
        """``[3]`` int32 RBs per slice of a (legalised) action."""
        return jnp.asarray(self.rbs_table, jnp.int32)[action]

    # ------------------------------------------------------------------ API
    def reset_env(self, key, params):
        k_pos, k_slice, k_timer = jax.random.split(key, 3)
        pos = traffic.draw_positions(k_pos, self.num_users, params)
        slice_id = traffic.draw_slices(k_slice, self.num_users, params)
        u = jax.random.uniform(k_timer, (self.num_users,), jnp.float32)
        state = SlicingState(
            pos=pos, slice_id=slice_id, pathloss_db=physics.pathloss_db(pos),
            timer=traffic.gap_slots(slice_id, u, params),
            arrived=jnp.zeros(3, jnp.int32), t=jnp.int32(0),
        )
        return zscore(state.arrived), state

    def simulate(self, key, state: SlicingState, rbs: jax.Array, params):
        """The decision window of ``step`` (:func:`physics.simulate` with the draws of
        :func:`draws.draw_slot` under ``decision_seed(key)``) -> :class:`.types.WindowResult`."""
        seed = draws.decision_seed(key)

        def draw(t, _):
            return draws.draw_slot(seed, t, state.slice_id, params)

        return physics.simulate(state, rbs, jnp.arange(self.num_slots, dtype=jnp.int32), draw,
                                self.queue_len, float(self.bandwidth_hz), params,
                                self.scan_unroll)

    def step_env(self, key, state: SlicingState, action, params):
        action = legal_action(self.action_space(), action)
        rbs = self.rbs_from_action(action)
        res = self.simulate(key, state, rbs, params)
        info = summarize(res, state.slice_id, params)
        info["rbs"] = rbs
        t = state.t + 1
        state = state.replace(timer=res.timer, arrived=info["arrived"], t=t)
        reward = clipped_reward(info["utility"], params)
        return zscore(info["arrived"]), state, reward, jnp.bool_(False), \
            t >= params.episode_length, info


def summarize(res, slice_id: jax.Array, params: SlicingParams) -> dict:
    """Per-slice counts, SSR, SE and utility of a window (the ``info`` fields)."""
    out = {name: physics.per_slice(getattr(res, name), slice_id).astype(jnp.int32)
           for name in ("arrived", "delivered", "satisfied", "dropped", "blocked")}
    arrived = out["arrived"]
    ssr = jnp.where(arrived > 0, out["satisfied"] / jnp.maximum(arrived, 1), 1.0)
    out["ssr"] = ssr.astype(jnp.float32)
    out["se"] = res.se.astype(jnp.float32)
    out["utility"] = (params.se_weight * res.se + jnp.sum(params.ssr_weights * ssr)
                      ).astype(jnp.float32)
    return out


def clipped_reward(utility: jax.Array, params: SlicingParams) -> jax.Array:
    """+1 if ``utility >= reward_high``, -1 if ``<= reward_low``, else 0 (f32)."""
    return jnp.where(utility >= params.reward_high, 1.0,
                     jnp.where(utility <= params.reward_low, -1.0, 0.0)).astype(jnp.float32)
