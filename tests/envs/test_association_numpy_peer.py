"""``benchmarks/peers/association_numpy.py`` (the NumPy peers of ``bench_association``) computes
what ``association-v0`` computes from the same state: SINR, candidates, masks and features at
reset, the max-SINR choice, rates and rewards of one step and the next observation at the env's
new positions (mobility draws differ, so the peer's own move is checked by its invariants).
Float32 on both sides; one compile of the env's reset and step (~10 s)."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_association  # noqa: E402

from dtwin_jax.envs.association import AssociationEnv, max_sinr_policy  # noqa: E402

peer = bench_association.association_numpy
ENV, BENCH_PARAMS = bench_association.mobile_env_like()
VARIANT = {"decision_prob": 0.5, "churn": 0.2, "density_amp": 0.5}


def _params(variant: bool):
    extra = VARIANT if variant else {}
    return ENV.make_params(bs_xy=np.asarray(BENCH_PARAMS.bs_xy), num_users=30,
                           episode_length=100_000, **extra)


@pytest.fixture(scope="module")
def jitted():
    return jax.jit(ENV.reset_env), jax.jit(ENV.step_env)


def _batched(state) -> dict:
    return peer.state_to_numpy(jax.tree.map(lambda x: x[None], state))


def _same_observation(got, obs, state):
    feats, cand, mask = got
    np.testing.assert_array_equal(cand[0], np.asarray(state.candidates))
    np.testing.assert_array_equal(mask[0], np.asarray(state.action_mask))
    np.testing.assert_allclose(feats[0], np.asarray(obs.features), atol=2e-6)


@pytest.mark.parametrize("variant", [False, True], ids=["bench", "tokens-churn-density"])
def test_reset_physics_and_observation_match_the_env(jitted, variant):
    reset, _ = jitted
    params = _params(variant)
    p = peer.params_to_numpy(params, ENV.num_macro)
    key = jax.random.PRNGKey(3)
    obs, state = reset(key, params)
    st = _batched(state)
    sinr = peer.full_load_sinr(st, st["mob"]["pos"], p)
    np.testing.assert_allclose(sinr, st["sinr"], rtol=1e-4)
    token_u = jax.random.uniform(jax.random.split(key, 4)[2], (ENV.max_users,))  # as _start
    got = peer.observe(np.asarray(token_u)[None], st["active"], st["assoc"], st["sinr"], p,
                       ENV.num_candidates)
    _same_observation(got, obs, state)


@pytest.mark.parametrize("variant", [False, True], ids=["bench", "tokens-churn-density"])
def test_one_step_rewards_rates_and_next_observation_match_the_env(jitted, variant):
    reset, step = jitted
    params = _params(variant)
    p = peer.params_to_numpy(params, ENV.num_macro)
    obs, state = reset(jax.random.PRNGKey(4), params)
    key = jax.random.PRNGKey(5)
    action = max_sinr_policy(ENV)(key, obs, state, params)
    obs1, state1, reward, _, _, info = step(key, state, action, params)
    st = _batched(state)

    bs = peer.max_sinr(st)
    np.testing.assert_array_equal(bs[0], np.asarray(ENV.chosen_bs(state, action)))
    got_reward, got = peer.serve(st, bs, p)
    np.testing.assert_allclose(got_reward[0], np.asarray(reward), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["throughput"][0], np.asarray(info["throughput"]), rtol=1e-5)
    np.testing.assert_allclose(got["mean_throughput"][0], float(info["mean_throughput"]),
                               rtol=1e-5)
    np.testing.assert_array_equal(got["load"][0], np.asarray(info["load"]))
    assert got["handovers"][0] == int(info["handovers"])

    # the next observation at the env's new positions, with the env's uniforms (as step_env)
    churn_u, token_u = (np.asarray(x)[None] for x in
                        jax.random.uniform(jax.random.split(key)[1], (2, ENV.max_users)))
    active = peer.churn(churn_u, st["active"], st["t"] + 1, st["phase"], p)
    np.testing.assert_array_equal(active[0], np.asarray(state1.active))
    pos = np.asarray(state1.mobility.pos)[None]
    sinr = peer.full_load_sinr(st, pos, p)
    np.testing.assert_allclose(sinr[0], np.asarray(state1.sinr), rtol=1e-4)
    assoc = np.where(active & ~st["active"], np.argmax(np.asarray(state1.sinr)[None], -1), bs)
    np.testing.assert_array_equal(assoc[0], np.asarray(state1.assoc))
    got = peer.observe(token_u, active, assoc, np.asarray(state1.sinr)[None], p,
                       ENV.num_candidates)
    _same_observation(got, obs1, state1)


def test_peer_steps_keep_users_in_the_area_and_move_at_most_speed_dt(jitted):
    reset, _ = jitted
    params = _params(False)
    p = peer.params_to_numpy(params, ENV.num_macro)
    keys = jax.random.split(jax.random.PRNGKey(6), 3)
    st = peer.state_to_numpy(jax.vmap(reset, (0, None))(keys, params)[1])
    rng = np.random.default_rng(0)
    for _ in range(30):
        feats, new, reward, info = peer.step(rng, st, p)
        pos, before = new["mob"]["pos"], st["mob"]["pos"]
        assert pos.dtype == np.float32 and feats.dtype == np.float32
        assert (pos >= p["area_min"]).all() and (pos <= p["area_max"]).all()
        limit = st["mob"]["speed"] * p["dt"] * (1 + 1e-5) + 1e-3
        assert (np.linalg.norm(pos - before, axis=-1) <= limit).all()
        paused = st["mob"]["pause_left"] > 0
        np.testing.assert_array_equal(pos[paused], before[paused])
        assert np.isfinite(reward).all() and (info["throughput"] >= 0).all()
        st = new
    assert (st["t"] == 30).all()


def test_macro_cells_use_the_uma_pathloss():
    env = AssociationEnv(num_bs=6, num_macro=2, max_users=20, mobility="waypoint", area_m=800.0)
    params = env.default_params
    _, state = jax.jit(env.reset_env)(jax.random.PRNGKey(7), params)
    st = _batched(state)
    sinr = peer.full_load_sinr(st, st["mob"]["pos"], peer.params_to_numpy(params, 2))
    np.testing.assert_allclose(sinr, st["sinr"], rtol=1e-4)
