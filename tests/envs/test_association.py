"""association-v0: NumPy reference of the physics and rates, masks, baselines, API checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.envs.association import (
    AssociationEnv,
    association_policy,
    masked_quantile,
    max_sinr_policy,
    random_policy,
    rsrp_bias_policy,
    target_to_action,
)
from dtwin_jax.envs.testing import check_env


@pytest.fixture(scope="module")
def env():
    return AssociationEnv(num_bs=5, num_macro=1, max_users=12, num_candidates=3,
                          mobility="waypoint", area_m=300.0, shadow_cell_m=10.0)


@pytest.fixture(scope="module")
def params(env):
    return env.make_params(num_users=9, decision_prob=0.5, w_handover=0.1)


@pytest.fixture(scope="module")
def fns(env):
    return jax.jit(env.reset_env), jax.jit(env.step_env)


# ------------------------------------------------------------------ NumPy reference
def _np_los_prob(d2, macro):
    d = np.maximum(d2, 1e-9)
    if macro:
        p = 18 / d + np.exp(-d / 63) * (1 - 18 / d)
    else:
        p = 18 / d + np.exp(-d / 36) * (1 - 18 / d)
    return np.where(d2 <= 18, 1.0, p)


def _np_pathloss(d2, d3, fc, h_bs, h_ut, macro):
    dbp = 4 * (h_bs - 1) * (h_ut - 1) * fc * 1e9 / 3e8
    lg = np.log10
    if macro:
        pl1 = 28 + 22 * lg(d3) + 20 * lg(fc)
        pl2 = 28 + 40 * lg(d3) + 20 * lg(fc) - 9 * lg(dbp**2 + (h_bs - h_ut) ** 2)
        nlos_p = 13.54 + 39.08 * lg(d3) + 20 * lg(fc) - 0.6 * (h_ut - 1.5)
    else:
        pl1 = 32.4 + 21 * lg(d3) + 20 * lg(fc)
        pl2 = 32.4 + 40 * lg(d3) + 20 * lg(fc) - 9.5 * lg(dbp**2 + (h_bs - h_ut) ** 2)
        nlos_p = 22.4 + 35.3 * lg(d3) + 21.3 * lg(fc) - 0.3 * (h_ut - 1.5)
    los = np.where(d2 <= dbp, pl1, pl2)
    nlos = np.maximum(los, nlos_p)
    p = _np_los_prob(d2, macro)
    return -10 * lg(p * 10 ** (-los / 10) + (1 - p) * 10 ** (-nlos / 10))


def _np_tile_lookup(tile, pos):
    """Shadowing [U, B] of a periodic tile at ``pos`` (float64 NumPy): symmetry, shift, wrap,
    bilinear interpolation."""
    v = np.asarray(tile.values, np.float64)[:-1, :-1]  # [T, T, B] without the wrapped copy
    t = v.shape[0]
    p = np.asarray(pos, np.float64)
    if bool(tile.swap):
        p = p[:, ::-1]
    p = np.where(np.asarray(tile.flip), -p, p) + np.asarray(tile.offset, np.float64)
    f = np.mod(p / float(tile.cell_size), t)
    ix, iy = np.floor(f[:, 0]).astype(int) % t, np.floor(f[:, 1]).astype(int) % t
    tx, ty = f[:, 0] - np.floor(f[:, 0]), f[:, 1] - np.floor(f[:, 1])
    jx, jy = (ix + 1) % t, (iy + 1) % t
    tx, ty = tx[:, None], ty[:, None]
    return ((1 - tx) * (1 - ty) * v[iy, ix] + tx * (1 - ty) * v[iy, jx]
            + (1 - tx) * ty * v[jy, ix] + tx * ty * v[jy, jx])  # [U, B]


def np_sinr(env, params, state):
    """Full-load SINR [U, B] from positions and the shadowing tile, all in float64 NumPy."""
    pos = np.asarray(state.mobility.pos, np.float64)
    bs = np.asarray(params.bs_xy, np.float64)
    h_bs = np.asarray(params.bs_height_m, np.float64)
    h_ut = float(params.ue_height_m)
    d2 = np.maximum(np.linalg.norm(pos[:, None] - bs[None], axis=-1), 0.0)
    d3 = np.maximum(np.sqrt(d2**2 + (h_bs - h_ut) ** 2), 1.0)
    macro = np.arange(env.num_bs) < env.num_macro
    pl = np.where(macro, _np_pathloss(d2, d3, float(params.fc_ghz), h_bs, h_ut, True),
                  _np_pathloss(d2, d3, float(params.fc_ghz), h_bs, h_ut, False))
    shadow = _np_tile_lookup(state.shadow, pos)
    rx_w = 10 ** ((np.asarray(params.tx_power_dbm) - pl - shadow - 30) / 10)
    noise_w = 10 ** ((-174 + 10 * np.log10(float(params.bandwidth_hz))
                      + float(params.noise_figure_db) - 30) / 10)
    return rx_w / (rx_w.sum(-1, keepdims=True) - rx_w + noise_w)


def test_sinr_matches_numpy_reference(env, params, fns):
    reset, _ = fns
    for seed in range(2):
        _, state = reset(jax.random.PRNGKey(seed), params)
        ref = np_sinr(env, params, state)
        np.testing.assert_allclose(10 * np.log10(np.asarray(state.sinr)), 10 * np.log10(ref),
                                   atol=0.02)
        assert float(np.std(np.asarray(state.shadow.values)[..., 0])) > 1.0  # a field exists


def test_step_rates_rewards_metrics_match_numpy(env, params, fns):
    reset, step = fns
    obs, state = reset(jax.random.PRNGKey(3), params)
    key = jax.random.PRNGKey(4)
    for _ in range(3):
        k_act, k_step, key = jax.random.split(key, 3)
        action = random_policy(env)(k_act, obs, state, params)
        obs2, state2, reward, term, trunc, info = step(k_step, state, action, params)
        active = np.asarray(state.active)
        cand, mask = np.asarray(state.candidates), np.asarray(state.action_mask)
        a = np.asarray(action)
        assert mask[np.arange(env.max_users), a].all()
        bs = cand[np.arange(env.max_users), a]
        sinr = np.asarray(state.sinr, np.float64)
        load = np.array([np.sum(active & (bs == b)) for b in range(env.num_bs)])
        spectral = np.log2(1 + sinr[np.arange(12), bs])
        rate = np.where(active, 20e6 / np.maximum(load[bs], 1) * spectral, 0)
        np.testing.assert_allclose(np.asarray(info["throughput"]), rate, rtol=1e-4)
        np.testing.assert_array_equal(np.asarray(info["load"]), load)
        util = np.log(np.maximum(rate, 1e3) / 1e6)
        net = util[active].mean()
        ho = active & (bs != np.asarray(state.assoc))
        ref_r = np.where(active, util + net - 0.1 * ho, 0.0)
        np.testing.assert_allclose(np.asarray(reward), ref_r, rtol=1e-4, atol=1e-4)
        r = rate[active]
        np.testing.assert_allclose(float(info["cell_edge"]), np.percentile(r, 5), rtol=1e-4)
        np.testing.assert_allclose(float(info["mean_throughput"]), r.mean(), rtol=1e-5)
        np.testing.assert_allclose(float(info["jain"]), r.sum() ** 2 / (len(r) * (r**2).sum()),
                                   rtol=1e-4)
        np.testing.assert_allclose(float(info["sum_log_utility"]), util[active].sum(), rtol=1e-4)
        assert int(info["handovers"]) == ho.sum()
        # the next observation is at the moved positions, with the chosen association kept
        np.testing.assert_array_equal(np.asarray(state2.assoc)[active], bs[active])
        ref = np_sinr(env, params, state2)
        np.testing.assert_allclose(10 * np.log10(np.asarray(state2.sinr)), 10 * np.log10(ref),
                                   atol=0.02)
        assert not bool(term) and not bool(trunc)
        obs, state = obs2, state2


def test_candidates_mask_and_features(env, params, fns):
    reset, step = fns
    obs, state = reset(jax.random.PRNGKey(5), params)
    key = jax.random.PRNGKey(6)
    for _ in range(4):
        sinr_db = 10 * np.log10(np.asarray(state.sinr))
        cand = np.asarray(state.candidates)
        np.testing.assert_array_equal(cand, np.argsort(-sinr_db, axis=-1)[:, :3])
        is_cur = cand == np.asarray(state.assoc)[:, None]
        mask = np.asarray(obs.action_mask)
        locked = is_cur.any(-1) & (mask.sum(-1) == 1)
        # a user either holds a token (all candidates legal) or may only stay
        np.testing.assert_array_equal(mask[locked], is_cur[locked])
        assert mask[~locked].all()
        assert mask[~is_cur.any(-1)].all()  # current BS dropped out: free to hand over
        f = np.asarray(obs.features)
        top = np.sort(sinr_db, -1)[:, ::-1][:, :3]
        np.testing.assert_allclose(f[:, :3], np.clip((top - 10) / 20, -10, 10), atol=1e-4)
        np.testing.assert_array_equal(f[:, 6:9], is_cur.astype(np.float32))
        k1, k2, key = jax.random.split(key, 3)
        obs, state, *_ = step(k2, state, random_policy(env)(k1, obs, state, params), params)
    # with decision_prob 0 every user whose BS is still a candidate must stay
    p0 = params.replace(decision_prob=jnp.float32(0.0))
    obs, state = reset(jax.random.PRNGKey(7), p0)
    assert (np.asarray(obs.action_mask).sum(-1) == 1).all()  # at reset everyone is on its best BS


def test_illegal_actions_fall_back_to_legal_choice(env, params, fns):
    reset, _ = fns
    obs, state = reset(jax.random.PRNGKey(8), params.replace(decision_prob=jnp.float32(0.0)))
    bs = np.asarray(env.chosen_bs(state, jnp.full(12, 2, jnp.int32)))
    np.testing.assert_array_equal(bs, np.asarray(state.assoc))  # locked users cannot move


def test_baselines(env, params, fns):
    reset, _ = fns
    p1 = params.replace(decision_prob=jnp.float32(1.0))
    obs, state = reset(jax.random.PRNGKey(9), p1)
    key = jax.random.PRNGKey(0)
    a_sinr = max_sinr_policy(env)(key, obs, state, p1)
    np.testing.assert_array_equal(np.asarray(a_sinr), 0)
    np.testing.assert_array_equal(np.asarray(rsrp_bias_policy(env, 0.0)(key, obs, state, p1)), 0)
    # a huge bias sends every user to its best small-cell candidate when it has one
    a_bias = np.asarray(rsrp_bias_policy(env, 50.0)(key, obs, state, p1))
    cand = np.asarray(state.candidates)
    small = cand >= env.num_macro
    has_small = small.any(-1)
    np.testing.assert_array_equal(a_bias[has_small], np.argmax(small, -1)[has_small])
    # a centralised association is mapped to candidate indices; unreachable targets -> best legal
    target = jnp.asarray(cand[:, 1])
    np.testing.assert_array_equal(np.asarray(target_to_action(state, target)), 1)
    pol = association_policy(lambda sinr, active, p, allowed: jnp.full(12, 99, jnp.int32))
    np.testing.assert_array_equal(np.asarray(pol(key, obs, state, p1)), 0)
    a_rand = np.asarray(random_policy(env)(key, obs, state, p1))
    assert np.asarray(obs.action_mask)[np.arange(12), a_rand].all()


def test_check_env_and_churn(env, params):
    traj = check_env(env, params.replace(churn=jnp.float32(0.2), episode_length=jnp.int32(8)),
                     num_steps=20)
    obs, reward, term, trunc, info = traj
    counts = np.asarray(info["num_active"])
    assert counts.min() >= 0 and counts.max() <= 12 and len(set(counts.tolist())) > 1
    assert np.asarray(trunc).sum() == 2  # episodes of 8 steps


def test_validation(env):
    with pytest.raises(ValueError, match="num_users"):
        env.make_params(num_users=13)
    with pytest.raises(ValueError, match="decision_prob"):
        env.make_params(decision_prob=1.5)
    with pytest.raises(ValueError, match="mobility"):
        AssociationEnv(mobility="teleport")
    with pytest.raises(ValueError, match="num_candidates"):
        AssociationEnv(num_bs=3, num_macro=1, num_candidates=4)
    with pytest.raises(ValueError, match="no parameter"):
        env.make_params(speed=3.0)


def test_masked_quantile_matches_numpy():
    """Both paths: selection rounds (q = 0.05) and the sort (q = 0.5, 0.95); with ties."""
    rng = np.random.default_rng(0)
    for size, n in ((40, 1), (40, 2), (40, 7), (40, 30), (256, 3), (256, 200), (256, 256)):
        x = rng.exponential(size=size).astype(np.float32)
        x[: size // 4] = np.round(x[: size // 4])  # ties
        mask = np.zeros(size, bool)
        mask[rng.choice(size, n, replace=False)] = True
        for q in (0.05, 0.5, 0.95):
            got = float(masked_quantile(jnp.asarray(x), jnp.asarray(mask), q))
            np.testing.assert_allclose(got, np.quantile(x[mask], q), rtol=1e-5)
    assert float(masked_quantile(jnp.ones(4), jnp.zeros(4, bool), 0.05)) == 0.0


def test_auto_reset_keeps_the_shadowing_tile_and_moves_it(env, params, fns):
    reset, _ = fns
    _, state = reset(jax.random.PRNGKey(5), params)
    _, again = jax.jit(env.reset_from)(jax.random.PRNGKey(6), state, params)
    np.testing.assert_array_equal(again.shadow.values, state.shadow.values)
    assert not np.allclose(again.shadow.offset, state.shadow.offset)
    _, fresh = reset(jax.random.PRNGKey(7), params)  # a new twin draws a new tile
    assert not np.allclose(fresh.shadow.values, state.shadow.values)
    # the twin's shadowing state is the tile: (T + 1)^2 B floats, T covering the 300 m area
    assert state.shadow.values.shape == (31, 31, env.num_bs)
    big = AssociationEnv(num_bs=22, num_macro=4, max_users=256)
    leaves = jax.tree.leaves(jax.eval_shape(big.reset, jax.random.PRNGKey(0))[1])
    assert sum(x.size * x.dtype.itemsize for x in leaves) < 500_000
