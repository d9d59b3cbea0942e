"""Robustness under load (issue 14): extreme but valid configs of every registered env run
under ``jit`` with finite outputs whose values match closed forms computed here in NumPy.

Cases, per env (one test each; "n/a": the env has no such notion; "--": valid but not run
here, its compile and run cost too much for this file: dnt's RB matching and edge's per-user
model training at 1000 users; slicing has one BS by construction):

=====================  ================  ===============  ===============  ================
case                   association-v0    dnt-sync-v0      slicing-v0       edge-retrain-v0
=====================  ================  ===============  ===============  ================
1 BS                   SINR = SNR        no interference  --               with 1 user
1 user                 no load sharing   1 user, 3 BSs    1 user           with 1 BS
1000 users             max_users=1000    --               num_users=1000   --
user exactly on a BS   d = 0 clamps      d = 0 clamps     area ~ 1 mm      d = 0 clamps
all users in one cell  one BS loaded     one BS covers    one slice        one BS (capacity)
zero active users      density -> 0      nobody covered   no traffic       n/a
invalid sizes/params   ValueError        ValueError       ValueError       ValueError
=====================  ================  ===============  ===============  ================

Every static configuration is compiled once (a module fixture holding a jitted rollout);
the cases of one configuration differ in params only. Invalid configurations raise a
ValueError naming the field from the constructor or ``make_params``, before any tracing.
Units: metres, W, dB(m), Hz, bit/s.
"""

import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.envs import make, registered_envs
from dtwin_jax.envs.association import max_sinr_policy, random_policy
from dtwin_jax.envs.dnt_sync import physics as dnt_physics
from dtwin_jax.envs.dnt_sync import policies as dnt_policies
from dtwin_jax.envs.slicing import physics as slicing_physics
from dtwin_jax.envs.slicing import policies as slicing_policies

COVERED = {"association-v0", "dnt-sync-v0", "edge-retrain-v0", "slicing-v0"}


def test_every_registered_env_has_extreme_config_cases():
    ids = {i for i in registered_envs() if not i.startswith("counter-test")}
    assert ids <= COVERED, f"add extreme-config cases for {sorted(ids - COVERED)}"


def _assert_finite(tree):
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            assert np.isfinite(leaf).all(), f"non-finite values in {jax.tree_util.keystr(path)}"


def _no_final_obs(info: dict) -> dict:
    return {k: v for k, v in info.items() if k != "final_observation"}


# ============================================================================ association-v0
ASSOC_STEPS = 10
BW_HZ = 20e6  # the default bandwidth per BS


def _np_assoc_rx_w(pos, params, num_macro: int) -> np.ndarray:
    """``[U, B]`` received power (W) without shadowing, float64: tx power minus the
    LOS-probability-weighted 38.901 pathloss (UMa for the first ``num_macro`` BSs, UMi street
    canyon for the others), 3D distance floored at 1 m. ``pos [U, 2]`` m."""
    pos = np.asarray(pos, np.float64)
    bs = np.asarray(params.bs_xy, np.float64)
    h_bs = np.asarray(params.bs_height_m, np.float64)
    h_ut, fc = float(params.ue_height_m), float(params.fc_ghz)
    d2 = np.linalg.norm(pos[:, None] - bs[None], axis=-1)
    dh = h_bs - h_ut
    d3 = np.maximum(np.sqrt(d2**2 + dh**2), 1.0)  # the pathloss min-distance clamp
    d2_bp = np.sqrt(np.maximum(d3**2 - dh**2, 0.0))  # compared with the breakpoint
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * fc * 1e9 / 3e8
    macro = np.arange(len(bs)) < num_macro
    lg = np.log10
    a, b_near, b_far = (np.where(macro, x, y) for x, y in ((28.0, 32.4), (22.0, 21.0), (9.0, 9.5)))
    pl1 = a + b_near * lg(d3) + 20 * lg(fc)
    pl2 = a + 40 * lg(d3) + 20 * lg(fc) - b_far * lg(d_bp**2 + dh**2)
    los = np.where(d2_bp <= d_bp, pl1, pl2)
    nlos = np.maximum(los, np.where(
        macro, 13.54 + 39.08 * lg(d3) + 20 * lg(fc) - 0.6 * (h_ut - 1.5),
        22.4 + 35.3 * lg(d3) + 21.3 * lg(fc) - 0.3 * (h_ut - 1.5)))
    d = np.maximum(d2, 1.0)
    p = np.where(d2 <= 18, 1.0, 18 / d + np.exp(-d / np.where(macro, 63.0, 36.0)) * (1 - 18 / d))
    gain = p * 10 ** (-los / 10) + (1 - p) * 10 ** (-nlos / 10)
    return 10 ** ((np.asarray(params.tx_power_dbm, np.float64) - 30) / 10) * gain


def _np_noise_w(params) -> float:
    return 10 ** ((-174 + 10 * np.log10(float(params.bandwidth_hz))
                   + float(params.noise_figure_db) - 30) / 10)


def _np_assoc_sinr(pos, params, num_macro: int) -> np.ndarray:
    """``[U, B]`` full-load SINR (linear) without shadowing, float64."""
    rx = _np_assoc_rx_w(pos, params, num_macro)
    return rx / (rx.sum(-1, keepdims=True) - rx + _np_noise_w(params))


def _assoc_rollout(env, policy):
    """Jitted ``(key, params) -> dict`` of ``[T, ...]`` NumPy arrays over ``ASSOC_STEPS`` steps:
    the state and observation before each step (pos [T, U, 2] m, sinr [T, U, B], active,
    assoc, candidates, features, agent_mask), the BS each user chose (chosen [T, U]), the
    reward [T, U] and the step's info (``next_agent_mask`` = info's agent_mask)."""

    def run(key, params):
        k_reset, k_run = jax.random.split(key)
        obs, state = env.reset(k_reset, params)

        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            action = policy(k_act, obs, state, params)
            obs2, state2, reward, term, trunc, info = env.step(k_step, state, action, params)
            info = _no_final_obs(info)
            info["next_agent_mask"] = info.pop("agent_mask")
            out = dict(pos=state.mobility.pos, sinr=state.sinr, active=state.active,
                       assoc=state.assoc, candidates=state.candidates,
                       features=obs.features, agent_mask=obs.agent_mask,
                       chosen=env.chosen_bs(state, action), reward=reward,
                       done=term | trunc, **info)
            return (obs2, state2), out

        return jax.lax.scan(body, (obs, state), jax.random.split(k_run, ASSOC_STEPS))[1]

    fn = jax.jit(run)
    return lambda key, params: jax.tree.map(np.asarray, fn(key, params))


def _playback_params(env, pos, **overrides):
    """Params of a playback-mobility env whose users stand still at ``pos [U, 2]`` m, without
    shadowing (so the NumPy reference is closed form)."""
    traj = np.repeat(np.asarray(pos, np.float32)[:, None], 2, axis=1)  # [U, 2 samples, 2]
    mobility = env.default_params.mobility.replace(traj=jnp.asarray(traj))
    return env.make_params(mobility=mobility, shadow_sigma_db=np.zeros(env.num_bs, np.float32),
                           **overrides)


@pytest.fixture(scope="module")
def assoc_one_bs():
    env = make("association-v0", num_bs=1, num_macro=1, max_users=6, num_candidates=1,
               mobility="waypoint", area_m=300.0, shadow_cell_m=20.0)
    return env, _assoc_rollout(env, max_sinr_policy(env))


@pytest.fixture(scope="module")
def assoc_one_user():
    env = make("association-v0", num_bs=4, num_macro=1, max_users=1, num_candidates=2,
               mobility="waypoint", area_m=300.0, shadow_cell_m=20.0)
    return env, _assoc_rollout(env, random_policy(env))


@pytest.fixture(scope="module")
def assoc_big():
    """4 BSs (1 macro), 1000 user slots standing still where the params put them."""
    env = make("association-v0", num_bs=4, num_macro=1, max_users=1000, num_candidates=2,
               mobility="playback", area_m=400.0, shadow_cell_m=20.0, playback_samples=2)
    return env, _assoc_rollout(env, max_sinr_policy(env))


def test_association_one_bs_serves_everyone_at_its_snr(assoc_one_bs):
    """1 BS: every user is on BS 0 (the only candidate), its SINR is the SNR (no
    interference) of the closed-form 38.901 link, and the 5 active users split the band."""
    env, run = assoc_one_bs
    params = env.make_params(num_users=5, shadow_sigma_db=np.zeros(1, np.float32))
    out = run(jax.random.key(0), params)
    _assert_finite(out)
    assert (out["candidates"] == 0).all() and (out["chosen"] == 0).all()
    assert (out["assoc"] == 0).all() and (out["handovers"] == 0).all()
    active = out["active"]
    assert (active.sum(-1) == 5).all() and (out["num_active"] == 5).all()
    np.testing.assert_array_equal(out["load"][:, 0], 5.0)
    snr = np.stack([_np_assoc_rx_w(p, params, 1)[:, 0] for p in out["pos"]]) / _np_noise_w(params)
    np.testing.assert_allclose(10 * np.log10(out["sinr"][..., 0]), 10 * np.log10(snr), atol=0.02)
    rate = np.where(active, BW_HZ / 5 * np.log2(1 + snr), 0.0)
    np.testing.assert_allclose(out["throughput"], rate, rtol=1e-3)
    util = np.log(np.maximum(rate, 1e3) / 1e6)  # rate_ref 1 Mbit/s, floor 1 kbit/s
    net = np.where(active, util, 0).sum(-1, keepdims=True) / 5
    np.testing.assert_allclose(out["reward"], np.where(active, util + net, 0.0), atol=2e-3)


def test_association_one_user_gets_the_whole_band(assoc_one_user):
    """1 user, 4 BSs, random legal choices: its BS carries load 1, nobody shares the band
    (rate = B log2(1 + SINR)), Jain = 1, cell edge = mean, and own = network utility."""
    env, run = assoc_one_user
    params = env.make_params(num_users=1)
    out = run(jax.random.key(1), params)
    _assert_finite(out)
    assert out["active"].all() and out["agent_mask"].all() and (out["num_active"] == 1).all()
    chosen = out["chosen"][:, 0]
    np.testing.assert_array_equal(out["load"], np.eye(4)[chosen])
    sinr = out["sinr"][np.arange(ASSOC_STEPS), 0, chosen]
    rate = BW_HZ * np.log2(1 + sinr.astype(np.float64))
    np.testing.assert_allclose(out["throughput"][:, 0], rate, rtol=1e-5)
    np.testing.assert_allclose(out["jain"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(out["cell_edge"], rate, rtol=1e-5)
    np.testing.assert_allclose(out["mean_throughput"], rate, rtol=1e-5)
    handover = chosen != out["assoc"][:, 0]
    assert handover.any(), "no handover in the rollout: pick another seed"
    np.testing.assert_array_equal(out["handovers"], handover)
    util = np.log(np.maximum(rate, 1e3) / 1e6)
    np.testing.assert_allclose(out["reward"][:, 0], 2 * util - 0.1 * handover, atol=1e-4)
    # paper features: the load of a candidate is 1 / load_ref on the user's BS, else 0
    n = env.num_candidates
    is_cur = out["candidates"][:, 0] == out["assoc"][:, :1]
    np.testing.assert_allclose(out["features"][:, 0, n:2 * n], 0.1 * is_cur, rtol=1e-6)
    np.testing.assert_array_equal(out["features"][:, 0, 2 * n:], is_cur)


def test_association_1000_users(assoc_big):
    """1000 users: loads sum to 1000 every step, SINR matches NumPy, the max-SINR choice and
    the load-coupled rates hold for every user, and a 10-step rollout runs in seconds."""
    env, run = assoc_big
    pos = np.random.default_rng(0).uniform(0.0, 400.0, (1000, 2))
    params = _playback_params(env, pos, num_users=1000)
    out = run(jax.random.key(2), params)
    _assert_finite(out)
    assert (out["num_active"] == 1000).all()
    np.testing.assert_array_equal(out["load"].sum(-1), 1000.0)
    ref = _np_assoc_sinr(pos, params, 1)
    np.testing.assert_allclose(10 * np.log10(out["sinr"]),
                               np.broadcast_to(10 * np.log10(ref), out["sinr"].shape), atol=0.02)
    chosen = out["chosen"]
    np.testing.assert_array_equal(chosen, np.argmax(out["sinr"], -1))
    np.testing.assert_array_equal(out["handovers"], 0)  # still users keep the reset's choice
    own_sinr = np.take_along_axis(out["sinr"], chosen[..., None], -1)[..., 0]
    own_load = np.take_along_axis(out["load"], chosen, -1)
    np.testing.assert_allclose(out["throughput"], BW_HZ / own_load * np.log2(1 + own_sinr),
                               rtol=1e-5)
    start = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(3), params))
    assert time.perf_counter() - start < 30.0, "1000 users: 10 compiled steps took > 30 s"


def test_association_user_exactly_on_a_bs(assoc_big):
    """A user standing exactly on each BS (2D distance 0; BS 3 at the UE's height, so the 3D
    distance is 0 too and the 1 m clamp applies; BS 2 at the lowest height, 1 m) is served
    by that BS at the finite closed-form SINR, and gets the whole band of its BS."""
    env, run = assoc_big
    bs = np.asarray(env.default_params.bs_xy, np.float64)
    pos = np.random.default_rng(1).uniform(0.0, 400.0, (1000, 2))
    pos[:4] = bs
    params = _playback_params(env, pos, num_users=4,
                              bs_height_m=np.array([25.0, 10.0, 1.0, 1.5], np.float32))
    out = run(jax.random.key(4), params)
    _assert_finite(out)
    on = np.arange(4)
    np.testing.assert_array_equal(out["assoc"][:, :4], np.broadcast_to(on, (ASSOC_STEPS, 4)))
    np.testing.assert_array_equal(out["chosen"][:, :4], np.broadcast_to(on, (ASSOC_STEPS, 4)))
    np.testing.assert_array_equal(out["load"], 1.0)
    ref = _np_assoc_sinr(pos[:4], params, 1)
    got = out["sinr"][0, :4]
    np.testing.assert_allclose(10 * np.log10(got), 10 * np.log10(ref), atol=0.02)
    own = ref[on, on]
    assert (own > 1.0).all() and (np.argmax(ref, -1) == on).all()
    np.testing.assert_allclose(out["throughput"][:, :4],
                               np.broadcast_to(BW_HZ * np.log2(1 + own), (ASSOC_STEPS, 4)),
                               rtol=1e-4)


def test_association_all_users_in_one_cell(assoc_big):
    """1000 users at one point 3 m from BS 1: all join BS 1, which carries the whole load;
    each user gets 1/1000 of its rate (equal rates: Jain = 1, cell edge = mean), the paper's
    load feature saturates at LOAD_LIMIT and the other candidate shows load 0."""
    env, run = assoc_big
    bs = np.asarray(env.default_params.bs_xy, np.float64)
    pos = np.broadcast_to(bs[1] + np.array([3.0, 0.0]), (1000, 2))
    params = _playback_params(env, pos, num_users=1000)
    out = run(jax.random.key(5), params)
    _assert_finite(out)
    ref = _np_assoc_sinr(pos[:1], params, 1)[0]
    assert np.argmax(ref) == 1
    assert (out["chosen"] == 1).all() and (out["assoc"] == 1).all()
    np.testing.assert_array_equal(out["load"], np.broadcast_to([0.0, 1000.0, 0.0, 0.0],
                                                              (ASSOC_STEPS, 4)))
    cell_rate = BW_HZ * np.log2(1 + ref[1])
    np.testing.assert_allclose(out["throughput"], cell_rate / 1000, rtol=1e-4)
    np.testing.assert_allclose(out["throughput"].sum(-1), cell_rate, rtol=1e-4)
    np.testing.assert_allclose(out["jain"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["cell_edge"], out["mean_throughput"], rtol=1e-5)
    n = env.num_candidates
    np.testing.assert_array_equal(out["features"][..., n], 20.0)  # min(1000 / 10, LOAD_LIMIT)
    np.testing.assert_array_equal(out["features"][..., n + 1], 0.0)


def test_association_zero_active_users(assoc_big):
    """The density profile drives the active count to 0 on some steps: there the agent mask
    is all False and every reward and metric is exactly its neutral value 0 (no 0/0)."""
    env, run = assoc_big
    pos = np.random.default_rng(2).uniform(0.0, 400.0, (1000, 2))
    params = _playback_params(env, pos, num_users=2, density_amp=1.0, density_period=8.0,
                              churn=0.2)
    out = run(jax.random.key(6), params)
    _assert_finite(out)
    n = out["agent_mask"].sum(-1)
    np.testing.assert_array_equal(out["num_active"], n)
    np.testing.assert_array_equal(out["load"].sum(-1), n)
    later = ~out["done"][:-1]
    np.testing.assert_array_equal(out["next_agent_mask"][:-1][later], out["agent_mask"][1:][later])
    empty = n == 0
    assert empty.any() and (~empty).any(), f"no step with zero active users: counts {n}"
    for name in ("reward", "throughput", "load", "cell_edge", "mean_throughput", "jain",
                 "sum_log_utility", "handovers"):
        np.testing.assert_array_equal(out[name][empty], 0, err_msg=name)


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_bs=0), "num_bs=0"),
    (dict(max_users=0), "max_users=0"),
    (dict(num_bs=1, num_macro=1, num_candidates=2), "num_candidates=2"),
    (dict(num_bs=1, num_macro=2), "num_macro=2"),
])
def test_association_invalid_sizes_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make("association-v0", **kwargs)


@pytest.mark.parametrize("overrides, field", [
    (dict(num_users=0), "num_users=0"),
    (dict(num_users=1001), "num_users=1001"),
    # regression: h_UT = h_BS = 1 m made d'_BP = h_BS - h_UT = 0 and the pathloss 270 dB
    (dict(ue_height_m=1.0), "ue_height_m=1.0"),
])
def test_association_invalid_params_raise_naming_the_field(assoc_big, overrides, field):
    env, _ = assoc_big
    with pytest.raises(ValueError, match=field):
        env.make_params(**overrides)


# ============================================================================ dnt-sync-v0
DNT_STEPS = 6
DNT_RBS = 3
STILL = np.array([1.0, 0.0, 0.0, 0.0, 0.0], np.float32)  # move probabilities: always stay


def _dnt_rollout(env, policy):
    """Jitted ``(key, params, pos0 [U, 2] m) -> dict`` of ``[T, ...]`` NumPy arrays over
    ``DNT_STEPS`` slots from users placed at ``pos0`` (twin synchronised there): positions
    and the persistence prediction before each slot, the decided ``update [M]``/``serve [M, U]``,
    the slot's fading draws (``fading [U, M, N]``, ``uplink_fading [M, N]``), observation
    features and masks, reward [M] and info."""
    u, m, n = env.num_users, env.num_bs, env.num_rbs

    def run(key, params, pos0):
        k_reset, k_run = jax.random.split(key)
        _, state = env.reset(k_reset, params)
        state = state.replace(mobility=state.mobility.replace(pos=pos0),
                              history=jnp.broadcast_to(pos0, state.history.shape))
        obs = env.observe(state, params)

        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            action = policy(k_act, obs, state, params)
            update, serve = env.decode(action, params)
            # Environment.step hands split(key)[0] to step_env, which draws with its split[0]
            k_draw = jax.random.split(jax.random.split(k_step)[0])[0]
            draws = dnt_physics.draw_slot(k_draw, u, m, n)
            obs2, state2, reward, _, _, info = env.step(k_step, state, action, params)
            out = dict(pos=state.mobility.pos, prediction=state.history[-1],
                       decided_update=update, decided_serve=serve, fading=draws.fading,
                       uplink_fading=draws.uplink_fading, features=obs.features,
                       action_mask=obs.action_mask, reward=reward, **_no_final_obs(info))
            return (obs2, state2), out

        return jax.lax.scan(body, (obs, state), jax.random.split(k_run, DNT_STEPS))[1]

    fn = jax.jit(run)
    return lambda key, params, pos0: jax.tree.map(
        np.asarray, fn(key, params, jnp.asarray(pos0, jnp.float32)))


def _dnt_params(env, still: bool, **overrides):
    if not still:
        return env.make_params(**overrides)
    probs = np.broadcast_to(STILL, (env.num_users, 5))
    mobility = env.default_params.mobility.replace(move_probs=jnp.asarray(probs))
    return env.make_params(mobility=mobility, **overrides)


def _dnt_gain(pos, params) -> np.ndarray:
    """``[U, M]`` mean downlink gain ``max(d, d_min)^-2`` (float64)."""
    d = np.linalg.norm(np.asarray(pos, np.float64)[:, None]
                       - np.asarray(params.bs_xy, np.float64)[None], axis=-1)
    return np.maximum(d, float(params.min_distance)) ** -2.0


def _dnt_reserved(out, t, params) -> np.ndarray:
    """``[M, N]`` bool: the RB each updating BS reserves (best uplink fading) in slot t."""
    best = np.argmax(out["uplink_fading"][t], axis=-1)
    return out["decided_update"][t][:, None] & (np.arange(DNT_RBS) == best[:, None])


def _np_single_user_cells(out, t, params) -> np.ndarray:
    """``[U]`` rates (bit/s, B = 1) of slot t when every BS serves at most one covered user.
    The iterative Hungarian scheme then reduces to: BS by BS, its user takes the free RB of
    best SINR given the interference of the BSs before it; the rate of every link is then
    evaluated with the interference of every other BS transmitting on its RB. float64."""
    p, noise = float(params.tx_power), float(params.noise_density * params.bandwidth)
    gain = out["fading"][t].astype(np.float64) * _dnt_gain(out["pos"][t], params)[..., None]
    d = np.linalg.norm(out["pos"][t][None] - np.asarray(params.bs_xy)[:, None], axis=-1)
    serve = out["decided_serve"][t] & (d <= float(params.coverage_radius))
    reserved = _dnt_reserved(out, t, params)
    tx = np.zeros(reserved.shape, bool)  # [M, N] BS m transmits to a user on RB r
    links = []
    for m in range(gain.shape[1]):
        users = np.flatnonzero(serve[m])
        assert users.size <= 1, "reference only for at most one served user per BS"
        if users.size == 0 or reserved[m].all():
            continue
        interf = (p * gain[users[0]] * tx).sum(0)  # [N] from the BSs before m
        r = int(np.argmax(np.where(reserved[m], -np.inf, gain[users[0], m] / (interf + noise))))
        tx[m, r] = True
        links.append((users[0], m, r))
    rate = np.zeros(gain.shape[0])
    for u, m, r in links:
        interf = sum(p * gain[u, k, r] for k in range(gain.shape[1]) if k != m and tx[k, r])
        rate[u] += np.log2(1 + p * gain[u, m, r] / (interf + noise))
    return rate


@pytest.fixture(scope="module")
def dnt_one_bs():
    env = make("dnt-sync-v0", num_bs=1, num_users=4, num_rbs=DNT_RBS, predictor="persistence")
    return env, _dnt_rollout(env, dnt_policies.update_and_serve_all_policy(env))


@pytest.fixture(scope="module")
def dnt_one_user():
    env = make("dnt-sync-v0", num_bs=3, num_users=1, num_rbs=DNT_RBS, predictor="persistence")
    return env, _dnt_rollout(env, dnt_policies.random_policy(env))


@pytest.fixture(scope="module")
def dnt_small():
    """3 BSs, 4 users; every BS updates and serves every user it covers (one compile)."""
    env = make("dnt-sync-v0", num_bs=3, num_users=4, num_rbs=DNT_RBS, predictor="persistence")
    return env, _dnt_rollout(env, dnt_policies.update_and_serve_all_policy(env))


def _best_matching_sum_rate(rate_ur: np.ndarray, rbs) -> float:
    """Max over one-to-one matchings of users to the RBs ``rbs`` of the summed
    ``rate_ur [U, N]`` (brute force)."""
    users, rbs = range(rate_ur.shape[0]), list(rbs)
    k = min(len(rbs), rate_ur.shape[0])
    return max(sum(rate_ur[u, r] for u, r in zip(us, rs, strict=True))
               for us in itertools.permutations(users, k)
               for rs in itertools.combinations(rbs, k))


def test_dnt_one_bs_has_no_interference_and_an_optimal_matching(dnt_one_bs):
    """1 BS serving every covered user and updating every slot: served_by is 0 or -1 (never
    "several"), one RB is reserved, the other RBs go to covered users at the interference-free
    rate log2(1 + P g h / (N0 B)) with the best matching, the update arrives iff its rate
    reaches D / alpha, and the rewards follow their closed forms (no overlap possible)."""
    env, run = dnt_one_bs
    params = _dnt_params(env, still=False)
    pos0 = np.random.default_rng(3).uniform([-150, -50], [150, 50], (4, 2))
    out = run(jax.random.key(7), params, pos0)
    _assert_finite(out)
    eps, p, noise = float(params.eps), float(params.tx_power), float(params.noise_density)
    for t in range(DNT_STEPS):
        pos = out["pos"][t].astype(np.float64)
        cov = np.linalg.norm(pos - np.asarray(params.bs_xy[0]), axis=-1) <= 60.0
        np.testing.assert_array_equal(out["served_by"][t], np.where(cov, 0, -1))
        reserved = _dnt_reserved(out, t, params)[0]
        rb_user = out["rb_user"][t, 0]
        np.testing.assert_array_equal(rb_user == -2, reserved)
        assert set(rb_user[~reserved]) <= {-1, *np.flatnonzero(cov)}
        rate_ur = np.log2(1 + p * out["fading"][t][:, 0] * _dnt_gain(pos, params) / noise)
        rate_ur = np.where(cov[:, None], rate_ur, 0.0)
        want = np.array([rate_ur[u, rb_user == u].sum() for u in range(4)])
        np.testing.assert_allclose(out["rates"][t], want, rtol=1e-5)
        best = _best_matching_sum_rate(rate_ur, np.flatnonzero(~reserved))
        np.testing.assert_allclose(want.sum(), best, rtol=1e-6)
        d_up = np.linalg.norm(np.asarray(params.bs_xy[0] - params.cloud_xy))
        up_rate = np.log2(1 + p * out["uplink_fading"][t, 0].max() / d_up**2 / noise)
        assert out["update_ok"][t, 0] == (up_rate >= 1.0)
        exact = cov & out["update_ok"][t, 0]
        err = np.where(exact, 0.0, ((pos - out["prediction"][t]) ** 2).sum(-1))
        np.testing.assert_allclose(out["twin_error"][t], err.sum(), rtol=1e-5, atol=1e-6)
        team = -(1 - eps) / 4 * err.sum() + eps * want.sum()
        np.testing.assert_allclose(out["team_reward"][t], team, rtol=1e-5, atol=1e-6)
        local = -(1 - eps) / 4 * err[cov].sum() + eps * want.sum()
        np.testing.assert_allclose(out["reward"][t, 0], local, rtol=1e-5, atol=1e-6)
    assert (out["twin_error"] > 0).any(), "users never drifted from the twin: other seed"


def test_dnt_one_user_between_two_bss(dnt_one_user):
    """1 user standing still in the overlap of BS 1's and BS 2's coverage, random legal
    decisions: BS 0 can never serve it (mask) and earns 0; its rate is the closed form of
    the sequential allocation (when both serve it, each link suffers the other's RB if they
    pick the same one); when both choose it the team reward
    is rho, otherwise eps * rate (the twin stays exact: error 0)."""
    env, run = dnt_one_user
    params = _dnt_params(env, still=True)
    out = run(jax.random.key(8), params, np.array([[50.0, 0.0]]))
    _assert_finite(out)
    np.testing.assert_array_equal(out["features"][:, :, 0], np.broadcast_to([0, 1, 1], (6, 3)))
    assert not out["action_mask"][:, 0, 2:].any() and out["action_mask"][:, 1:].all()
    np.testing.assert_array_equal(out["twin_error"], 0.0)
    np.testing.assert_array_equal(out["reward"][:, 0], 0.0)
    chosen = out["decided_serve"][:, :, 0]  # [T, M]
    assert not chosen[:, 0].any()
    both = chosen[:, 1] & chosen[:, 2]
    one = chosen[:, 1] ^ chosen[:, 2]
    assert both.any() and one.any(), "the random decisions missed a case: other seed"
    np.testing.assert_array_equal(out["served_by"][:, 0],
                                  np.where(both, -2, np.where(one, np.argmax(chosen, -1), -1)))
    for t in range(DNT_STEPS):
        np.testing.assert_allclose(out["rates"][t], _np_single_user_cells(out, t, params),
                                   rtol=1e-5)
    team = np.where(both, float(params.rho), float(params.eps) * out["rates"][:, 0])
    np.testing.assert_allclose(out["team_reward"], team, rtol=1e-5)


def test_dnt_users_exactly_on_the_bss(dnt_small):
    """Users 0-2 standing exactly on BSs 0-2 (distance 0, gain floored by min_distance) and
    user 3 outside every coverage: the log-distance feature is exactly 1, each BS serves its
    user at the finite sequential closed-form rate, user 3 gets nothing."""
    env, run = dnt_small
    params = _dnt_params(env, still=True)
    pos0 = np.concatenate([np.asarray(params.bs_xy), [[150.0, 50.0]]])
    out = run(jax.random.key(9), params, pos0)
    _assert_finite(out)
    u = env.num_users
    log_gain = out["features"][:, :, 4 * u:5 * u]  # [T, M, U]
    np.testing.assert_array_equal(log_gain[:, np.arange(3), np.arange(3)], 1.0)
    np.testing.assert_array_equal(out["features"][:, np.arange(3), u + np.arange(3)], 0.0)
    np.testing.assert_array_equal(out["served_by"], np.broadcast_to([0, 1, 2, -1], (6, 4)))
    for t in range(DNT_STEPS):
        want = _np_single_user_cells(out, t, params)
        np.testing.assert_allclose(out["rates"][t], want, rtol=1e-5)
    assert (out["rates"][:, :3] > 1.0).all() and (out["rates"][:, 3] == 0).all()


def test_dnt_all_users_in_one_cell(dnt_small):
    """All users within BS 1's coverage only, every BS serving all it covers: BSs 0 and 2 may
    serve nobody (mask), carry no user and earn exactly 0; BS 1 gives its N - 1 free RBs to
    the best matching of its users (interference-free, brute-force optimum)."""
    env, run = dnt_small
    params = _dnt_params(env, still=True)
    pos0 = np.random.default_rng(4).uniform(-10.0, 10.0, (4, 2))
    out = run(jax.random.key(10), params, pos0)
    _assert_finite(out)
    cov = out["features"][:, :, :4]
    np.testing.assert_array_equal(cov, np.broadcast_to([[0] * 4, [1] * 4, [0] * 4], cov.shape))
    flat_legal = np.zeros(2 ** 5, bool)
    flat_legal[:2] = True  # update or not, serving nobody
    np.testing.assert_array_equal(out["action_mask"][:, [0, 2]],
                                  np.broadcast_to(flat_legal, (6, 2, 32)))
    np.testing.assert_array_equal(out["served_by"], 1)
    assert set(np.unique(out["rb_user"][:, [0, 2]])) <= {-2, -1}
    np.testing.assert_array_equal(out["reward"][:, [0, 2]], 0.0)
    p, noise = float(params.tx_power), float(params.noise_density)
    for t in range(DNT_STEPS):
        rate_ur = np.log2(1 + p * out["fading"][t][:, 1] * _dnt_gain(pos0, params)[:, 1:2] / noise)
        free = np.flatnonzero(~_dnt_reserved(out, t, params)[1])
        np.testing.assert_allclose(out["rates"][t].sum(), _best_matching_sum_rate(rate_ur, free),
                                   rtol=1e-5)
        assert (out["rates"][t] > 0).sum() == len(free)  # N - 1 RBs, 4 users: all RBs used
    team = -(1 - float(params.eps)) / 4 * out["twin_error"] + float(params.eps) * out["sum_rate"]
    np.testing.assert_allclose(out["team_reward"], team, rtol=1e-5)


def test_dnt_no_user_covered(dnt_small):
    """Zero servable users (dnt's analogue of zero active users: everyone outside every
    coverage): only 'update or not' is legal, no rate, no RB to a user, served_by -1, every
    reward exactly 0 and the observation finite (no 0/0 in the features)."""
    env, run = dnt_small
    params = _dnt_params(env, still=True)
    pos0 = np.array([[-50.0, 50.0], [50.0, 50.0], [-50.0, -50.0], [50.0, -50.0]])
    out = run(jax.random.key(11), params, pos0)
    _assert_finite(out)
    assert not out["action_mask"][..., 2:].any() and out["action_mask"][..., :2].all()
    u = env.num_users  # coverage, relative x and y, log-distance: all 0 (stale counts grow)
    np.testing.assert_array_equal(out["features"][:, :, :3 * u], 0.0)
    np.testing.assert_array_equal(out["features"][:, :, 4 * u:5 * u], 0.0)
    np.testing.assert_array_equal(out["rates"], 0.0)
    np.testing.assert_array_equal(out["sum_rate"], 0.0)
    np.testing.assert_array_equal(out["served_by"], -1)
    np.testing.assert_array_equal(out["rb_user"] == -2, np.stack(
        [_dnt_reserved(out, t, params) for t in range(DNT_STEPS)]))
    assert (out["rb_user"] < 0).all()
    for name in ("reward", "team_reward", "twin_error"):
        np.testing.assert_array_equal(out[name], 0.0, err_msg=name)


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_bs=0), "num_bs=0"),
    (dict(num_bs=65), "num_bs=65"),
    (dict(num_users=0), "num_users=0"),
    (dict(num_rbs=0), "num_rbs=0"),
    (dict(num_users=13, action_form="flat"), "action_form='flat' needs num_users <= 12"),
])
def test_dnt_invalid_sizes_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make("dnt-sync-v0", predictor="persistence", **kwargs)


@pytest.mark.parametrize("overrides, field", [
    (dict(coverage_radius=1.0), "coverage_radius"),  # ln(radius) = 0 normalises a feature
    (dict(min_distance=0.0), "min_distance"),  # d^-2 at d = 0
])
def test_dnt_invalid_params_raise_naming_the_field(dnt_small, overrides, field):
    env, _ = dnt_small
    with pytest.raises(ValueError, match=field):
        env.make_params(**overrides)


# ============================================================================ slicing-v0
SLICING_DECISIONS = 3
SLICING_SLOTS = 40
FREQUENT = dict(volte_gap_max_s=0.004, urllc_gap_mean_s=0.004)  # every slice sends in 20 ms
SILENT = dict(volte_gap_max_s=1e4, video_gap_scale_s=1e4, video_gap_cap_s=1e4,
              urllc_gap_mean_s=1e4)  # next packets due in hours
SQ2 = np.sqrt(2.0)


def _slicing_rollout(env):
    """Jitted ``(key, params) -> dict`` of ``[T, ...]`` NumPy arrays over
    ``SLICING_DECISIONS`` random decisions: the state before each (pathloss_db [U] dB,
    slice_id [U]), the action, the next observation [3], reward and info."""
    policy = slicing_policies.random_policy(env)

    def run(key, params):
        k_reset, k_run = jax.random.split(key)
        obs, state = env.reset(k_reset, params)

        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            action = policy(k_act, obs, state, params)
            obs2, state2, reward, _, _, info = env.step(k_step, state, action, params)
            out = dict(pathloss_db=state.pathloss_db, slice_id=state.slice_id, action=action,
                       next_obs=obs2, reward=reward, **_no_final_obs(info))
            return (obs2, state2), out

        return jax.lax.scan(body, (obs, state), jax.random.split(k_run, SLICING_DECISIONS))[1]

    fn = jax.jit(run)
    return lambda key, params: jax.tree.map(np.asarray, fn(key, params))


@pytest.fixture(scope="module")
def slicing_one_user():
    env = make("slicing-v0", num_users=1, num_slots=SLICING_SLOTS)
    return env, _slicing_rollout(env)


@pytest.fixture(scope="module")
def slicing_big():
    env = make("slicing-v0", num_users=1000, num_slots=SLICING_SLOTS)
    return env, _slicing_rollout(env)


def _np_zscore(n) -> np.ndarray:
    n = np.asarray(n, np.float64)
    c = n - n.mean(-1, keepdims=True)
    std = np.sqrt((c * c).mean(-1, keepdims=True))
    return np.where(std > 0, c / np.where(std > 0, std, 1.0), 0.0)


def _check_window_accounting(env, params, out):
    """The bookkeeping every window obeys: arrived = delivered + dropped, satisfied <=
    delivered, SSR = satisfied / arrived (1 without arrivals), utility and clipped reward,
    RBs of the action, next observation = z-score of the arrivals."""
    _assert_finite(out)
    np.testing.assert_array_equal(out["arrived"], out["delivered"] + out["dropped"])
    assert (out["satisfied"] <= out["delivered"]).all()
    arrived = out["arrived"]
    ssr = np.where(arrived > 0, out["satisfied"] / np.maximum(arrived, 1), 1.0)
    np.testing.assert_allclose(out["ssr"], ssr, rtol=1e-6)
    utility = float(params.se_weight) * out["se"] + (ssr * np.asarray(params.ssr_weights)).sum(-1)
    np.testing.assert_allclose(out["utility"], utility, rtol=1e-5)
    reward = np.where(out["utility"] >= float(params.reward_high), 1.0,
                      np.where(out["utility"] <= float(params.reward_low), -1.0, 0.0))
    np.testing.assert_array_equal(out["reward"], reward)
    np.testing.assert_array_equal(out["rbs"], env.rbs_table[out["action"]])
    np.testing.assert_allclose(out["next_obs"], _np_zscore(arrived), atol=1e-6)


def test_slicing_one_user(slicing_one_user):
    """1 user: only its slice ever sees traffic; the two empty slices report zero counts
    and the neutral SSR 1, and the observation is the z-score of (n, 0, 0): sqrt 2 for the
    user's slice, -1/sqrt 2 for the others."""
    env, run = slicing_one_user
    params = env.make_params(**FREQUENT)
    out = run(jax.random.key(12), params)
    _check_window_accounting(env, params, out)
    s = int(out["slice_id"][0, 0])
    others = [k for k in range(3) if k != s]
    assert (out["arrived"][:, s] > 0).all()
    for name in ("arrived", "delivered", "satisfied", "dropped", "blocked"):
        np.testing.assert_array_equal(out[name][:, others], 0, err_msg=name)
    np.testing.assert_array_equal(out["ssr"][:, others], 1.0)
    want = np.where(np.arange(3) == s, SQ2, -1 / SQ2)
    np.testing.assert_allclose(out["next_obs"], np.broadcast_to(want, (3, 3)), atol=1e-6)


def test_slicing_no_traffic(slicing_one_user):
    """Zero active users (no packet in any window): every count 0, SSR the neutral 1, SE 0,
    utility = sum of the SSR weights exactly, reward -1 (3 <= c2 = 4.5), observation 0."""
    env, run = slicing_one_user
    params = env.make_params(**SILENT)
    out = run(jax.random.key(13), params)
    _check_window_accounting(env, params, out)
    for name in ("arrived", "delivered", "satisfied", "dropped", "blocked"):
        np.testing.assert_array_equal(out[name], 0, err_msg=name)
    np.testing.assert_array_equal(out["ssr"], 1.0)
    np.testing.assert_array_equal(out["se"], 0.0)
    np.testing.assert_array_equal(out["utility"], 3.0)
    np.testing.assert_array_equal(out["reward"], -1.0)
    np.testing.assert_array_equal(out["next_obs"], 0.0)


def test_slicing_1000_users(slicing_big):
    """1000 users (the largest size below MAX_USERS): the window bookkeeping holds exactly
    and the three slices share the 1000 users."""
    env, run = slicing_big
    params = env.default_params
    start = time.perf_counter()
    out = run(jax.random.key(14), params)
    _check_window_accounting(env, params, out)
    assert np.bincount(out["slice_id"][0], minlength=3).sum() == 1000
    assert (out["arrived"].sum(-1) > 100).all()
    assert (out["se"] > 0).all()
    assert time.perf_counter() - start < 60.0


def test_slicing_users_on_the_bs(slicing_big):
    """Every user within 1.5 mm of the BS (``area_half_m`` = 1 mm): the pathloss is the 1 m
    clamp's 145.4 + 37.5 log10(0.001) = 32.9 dB, and the spectral efficiency stays finite
    below its closed-form ceiling (shadowing above -5.5 sigma, >= 1 RB per scheduled user)."""
    env, run = slicing_big
    params = env.make_params(area_half_m=1e-3)
    out = run(jax.random.key(15), params)
    _check_window_accounting(env, params, out)
    clamp_db = 145.4 + 37.5 * np.log10(1e-3)
    np.testing.assert_allclose(out["pathloss_db"], clamp_db, atol=1e-4)
    np.testing.assert_allclose(np.asarray(slicing_physics.pathloss_db(jnp.zeros((2, 2)))),
                               clamp_db, atol=1e-4)
    snr_db = 46 + 20 - clamp_db + 5.5 * 8 + 174 - 10 * np.log10(180e3)
    se_max = 64 * np.log10(1 + 10 ** (snr_db / 10)) * out["rbs"].sum(-1) * 180e3 / 10e6
    assert (out["se"] > 0).all() and (out["se"] <= se_max).all()


def test_slicing_all_users_in_one_slice(slicing_big):
    """All 1000 users in the video slice: VoLTE and URLLC see nothing (counts 0, SSR 1)
    and the observation is the z-score of (0, n, 0)."""
    env, run = slicing_big
    params = env.make_params(slice_probs=np.array([0.0, 1.0, 0.0], np.float32))
    out = run(jax.random.key(16), params)
    _check_window_accounting(env, params, out)
    assert (out["slice_id"] == 1).all()
    assert (out["arrived"][:, 1] > 0).all()
    for name in ("arrived", "delivered", "satisfied", "dropped", "blocked"):
        np.testing.assert_array_equal(out[name][:, [0, 2]], 0, err_msg=name)
    np.testing.assert_array_equal(out["ssr"][:, [0, 2]], 1.0)
    np.testing.assert_allclose(out["next_obs"], np.broadcast_to([-1 / SQ2, SQ2, -1 / SQ2],
                                                                (3, 3)), atol=1e-6)


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_users=0), "num_users=0"),
    (dict(num_users=1024), "num_users=1024"),
    (dict(bandwidth_hz=360e3, unit_hz=180e3), "bandwidth_hz / unit_hz=2"),
])
def test_slicing_invalid_sizes_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make("slicing-v0", **kwargs)


@pytest.mark.parametrize("overrides, field", [
    (dict(area_half_m=0.0), "area_half_m"),
    (dict(slice_probs=np.array([0.5, 0.5, 0.5], np.float32)), "slice_probs"),
])
def test_slicing_invalid_params_raise_naming_the_field(slicing_one_user, overrides, field):
    env, _ = slicing_one_user
    with pytest.raises(ValueError, match=field):
        env.make_params(**overrides)


# ============================================================================ edge-retrain-v0
EDGE_STEPS = 4
#: small learning sizes: the cases here are about the radio, the association and the delays
EDGE_SMALL = dict(full_steps=4, full_samples=16, eval_samples=8, history_samples=8,
                  probe_samples=4, real_samples=4, generated_samples=4, incremental_steps=2,
                  hidden=8)


def _edge_rollout(env):
    """Jitted ``(key, params, pos0 [U, 2] m) -> dict`` of ``[T, ...]`` NumPy arrays over
    ``EDGE_STEPS`` slots of uniformly random actions from users placed at ``pos0`` (each on
    its nearest BS until the first frame): positions and fading before each slot, the action
    [U, 2], the observation before it, reward and info (``assoc`` the one in force)."""
    u = env.num_users

    def run(key, params, pos0):
        k_reset, k_run = jax.random.split(key)
        _, state = env.reset(k_reset, params)
        dist = jnp.linalg.norm(pos0[:, None] - params.bs_xy[None], axis=-1)
        state = state.replace(mobility=state.mobility.replace(pos=pos0),
                              assoc=jnp.argmin(dist, -1).astype(jnp.int32))
        obs = env.observe(state, params)

        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            action = jax.random.uniform(k_act, (u, 2))
            obs2, state2, reward, _, _, info = env.step(k_step, state, action, params)
            out = dict(pos=state.mobility.pos, fading=state.fading, action=action, obs=obs,
                       reward=reward, **_no_final_obs(info))
            return (obs2, state2), out

        return jax.lax.scan(body, (obs, state), jax.random.split(k_run, EDGE_STEPS))[1]

    fn = jax.jit(run)
    return lambda key, params, pos0: jax.tree.map(
        np.asarray, fn(key, params, jnp.asarray(pos0, jnp.float32)))


def _np_edge_rate(pos, fading, assoc, params) -> np.ndarray:
    """``[U]`` uplink rate (bit/s) to the serving BS: ``max(B log2(1 + P max(d, d_min)^-alpha
    h / N), 1)`` in float64."""
    d = np.linalg.norm(np.asarray(pos, np.float64)[:, None]
                       - np.asarray(params.bs_xy, np.float64)[None], axis=-1)
    gain = np.maximum(d, float(params.min_distance)) ** -float(params.pathloss_exp)
    snr = float(params.tx_power) * gain * fading / float(params.noise_power)
    rate = np.maximum(float(params.bandwidth) * np.log2(1 + snr), 1.0)
    return rate[np.arange(len(assoc)), assoc]


def _np_edge_inference_delay(action, rate, assoc, params) -> np.ndarray:
    """``[U]`` s: ``max((1 - x) L c / f_loc, x (L S / r + L c / (s F)))``, ``s`` the weight
    over the weights of the BS's users (equal shares when they sum to 0)."""
    x, w = action[:, 0].astype(np.float64), action[:, 1].astype(np.float64)
    same = assoc[:, None] == assoc[None, :]
    total, count = same @ w, same.sum(-1)
    share = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / count)
    work = float(params.samples_per_slot) * float(params.infer_flops)
    local = (1 - x) * work / float(params.local_flops)
    offload = x * (float(params.samples_per_slot) * float(params.bits_per_sample) / rate
                   + work / (share * float(params.bs_flops)))
    return np.maximum(local, offload)


def _check_edge_slots(out, params):
    """Every slot: finite, closed-form rate and inference delay for the association in force,
    delay = mean(inference + overhead), reward = -delay / delay_scale, overhead only (and
    always) at frame starts, accuracies in [0, 1]. Returns the rates ``[T, U]``."""
    _assert_finite(out)
    rates = np.stack([_np_edge_rate(out["pos"][t], out["fading"][t], out["assoc"][t], params)
                      for t in range(EDGE_STEPS)])
    for t in range(EDGE_STEPS):
        want = _np_edge_inference_delay(out["action"][t], rates[t], out["assoc"][t], params)
        np.testing.assert_allclose(out["inference_delay"][t], want, rtol=1e-4)
    np.testing.assert_allclose(out["delay"], (out["inference_delay"] + out["overhead"]).mean(-1),
                               rtol=1e-5)
    np.testing.assert_allclose(out["reward"], -out["delay"] / float(params.delay_scale),
                               rtol=1e-5)
    assert (out["overhead"][out["frame_start"]] > 0).all()
    assert (out["overhead"][~out["frame_start"]] == 0).all()
    for name in ("accuracy", "predicted_acc"):
        assert ((out[name] >= 0) & (out[name] <= 1)).all(), name
    return rates


@pytest.fixture(scope="module")
def edge_minimal():
    env = make("edge-retrain-v0", num_bs=1, num_users=1, **EDGE_SMALL)
    return env, _edge_rollout(env)


@pytest.fixture(scope="module")
def edge_small():
    """3 BSs, 3 users; retraining on real samples only (the cases here are about the radio,
    the association and the delays; the twin's generator runs in ``edge_minimal``)."""
    env = make("edge-retrain-v0", num_bs=3, num_users=3, retraining="real_only", **EDGE_SMALL)
    return env, _edge_rollout(env)


EDGE_EPISODE = dict(frame_length=2, episode_length=3)  # frames start at slots 0 and 2


def test_edge_one_bs_one_user(edge_minimal):
    """1 BS and 1 user (the smallest system; the twin and retraining run on one area): the
    user is on BS 0 and owns its whole compute whatever its weight, so the delays are the
    closed forms with share 1, and the observation's load and one-hot entries are 1."""
    env, run = edge_minimal
    params = env.make_params(**EDGE_EPISODE)
    out = run(jax.random.key(17), params, np.array([[40.0, 250.0]]))
    rates = _check_edge_slots(out, params)
    np.testing.assert_array_equal(out["assoc"], 0)
    np.testing.assert_array_equal(out["frame_start"], [True, False, True, True])
    np.testing.assert_allclose(out["obs"][:, 4:6], 1.0)  # users on its BS / U, one-hot BS 0
    np.testing.assert_allclose(out["obs"][0, 0], min(rates[0, 0] / 1e6 / 10, 10), rtol=1e-5)


def test_edge_users_exactly_on_the_bss(edge_small):
    """User u standing exactly on BS u (distance 0): the frame's association keeps it there,
    and its rate is the min-distance closed form B log2(1 + P d_min^-alpha h / N), finite."""
    env, run = edge_small
    params = env.make_params(**EDGE_EPISODE)
    out = run(jax.random.key(18), params, np.asarray(params.bs_xy))
    rates = _check_edge_slots(out, params)
    np.testing.assert_array_equal(out["assoc"][0], [0, 1, 2])
    fade = out["fading"][0][np.arange(3), np.arange(3)].astype(np.float64)
    want = 1e6 * np.log2(1 + 1e-4 * fade / 1e-13)  # d_min = 1 m: gain 1
    np.testing.assert_allclose(rates[0], want, rtol=1e-6)
    np.testing.assert_allclose(out["obs"][0, 0::8][:3], np.minimum(want / 1e6 / 10, 10),
                               rtol=1e-5)


def test_edge_all_users_in_one_cell(edge_small):
    """All users within 2 m of BS 2: with capacity 3 per BS the frame puts everyone on BS 2
    (their compute shares then split BS 2: closed-form delays, load feature 1); with the
    default capacity 2 the association respects it, two users on BS 2 and one elsewhere."""
    env, run = edge_small
    pos0 = np.asarray(env.default_params.bs_xy)[2] + np.array([[0.0, 0.0], [2.0, 0.0],
                                                                [0.0, 2.0]])
    params = env.make_params(max_users_per_bs=3, **EDGE_EPISODE)
    out = run(jax.random.key(19), params, pos0)
    _check_edge_slots(out, params)
    np.testing.assert_array_equal(out["assoc"][:2], 2)
    np.testing.assert_allclose(out["obs"][1, 4:24:8], 1.0)  # 3 users on its BS / 3
    capped = env.make_params(**EDGE_EPISODE)
    assert int(capped.max_users_per_bs) == 2
    out = run(jax.random.key(19), capped, pos0)
    _check_edge_slots(out, capped)
    counts = np.bincount(out["assoc"][0], minlength=3)
    assert counts[2] == 2 and counts.max() == 2, counts


@pytest.mark.parametrize("num_bs, num_users, capacity", [(1, 1, 1), (1, 4, 4), (3, 1, 1),
                                                        (3, 4, 3)])
def test_edge_default_capacity_is_valid_for_one_bs_or_one_user(num_bs, num_users, capacity):
    """Regression: the default ``max_users_per_bs`` (ceil(U / M) + 1) exceeded its bound U
    with 1 BS or 1 user, so those envs' own default params were rejected."""
    env = make("edge-retrain-v0", num_bs=num_bs, num_users=num_users)
    env.check_params(env.default_params)
    assert int(env.default_params.max_users_per_bs) == capacity


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_bs=0), "num_bs=0"),
    (dict(num_bs=17), "num_bs=17"),
    (dict(num_users=0), "num_users=0"),
])
def test_edge_invalid_sizes_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make("edge-retrain-v0", **kwargs)


@pytest.mark.parametrize("overrides, field", [
    (dict(max_users_per_bs=2), "max_users_per_bs=2"),  # above num_users = 1
    (dict(min_distance=0.0), "min_distance"),
])
def test_edge_invalid_params_raise_naming_the_field(edge_minimal, overrides, field):
    env, _ = edge_minimal
    with pytest.raises(ValueError, match=field):
        env.make_params(**overrides)
