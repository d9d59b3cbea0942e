"""slicing-v0: traffic distributions, draws, scheduler/SLA vs the NumPy reference, spaces and
split helpers, the API (check_env, jit, vmap, x64), baselines."""

import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.envs import make
from dtwin_jax.envs.slicing import (
    SlicingEnv,
    best_fixed_split,
    equal_split,
    equal_split_policy,
    physics,
    random_policy,
    split_table,
    traffic,
)
from dtwin_jax.envs.slicing import draws as D
from dtwin_jax.envs.testing import check_env

sys.path.insert(0, os.path.dirname(__file__))
import slicing_numpy_reference as ref  # noqa: E402

S = 300  # slots per decision in most tests (the default is 2000)


@pytest.fixture(scope="module")
def env():
    return SlicingEnv(num_slots=S)


@pytest.fixture(scope="module")
def tiny():
    """Small sizes for the API tests (compile time dominates them)."""
    return SlicingEnv(num_users=30, num_slots=60)


# ---------------------------------------------------------------------- spaces and helpers
@pytest.mark.parametrize("bw,unit,count", [(10e6, 1e6, 36), (10e6, 200e3, 1176),
                                           (20e6, 200e3, 4851)])
def test_action_counts_and_split_round_trip(bw, unit, count):
    e = SlicingEnv(num_slots=4, bandwidth_hz=bw, unit_hz=unit)
    assert e.num_actions == count and e.action_space().n == count
    splits = np.asarray(e.split_from_action(jnp.arange(count)))
    assert (splits >= 1).all() and (splits.sum(1) == e.num_units).all()
    assert len({tuple(s) for s in splits}) == count
    assert [tuple(s) for s in splits] == sorted(tuple(s) for s in splits)  # lexicographic
    for a in range(count):
        assert e.action_from_split(e.split_from_action(a)) == a
    rbs = np.asarray(e.rbs_table)
    assert (rbs == (splits * e.unit_hz) // 180_000).all()


def test_rbs_of_a_split(env):
    a = env.action_from_split((3, 3, 4))
    assert env.split_from_action(a) == (3, 3, 4)
    np.testing.assert_array_equal(env.rbs_from_action(jnp.int32(a)), [16, 16, 22])
    assert split_table(3).tolist() == [[1, 1, 1]]


def test_bad_constructor_args_and_params_are_refused(env):
    with pytest.raises(ValueError, match="urllc"):
        SlicingEnv(urllc="medium")
    with pytest.raises(ValueError, match="multiple of unit_hz"):
        SlicingEnv(bandwidth_hz=10e6, unit_hz=3e6)
    with pytest.raises(ValueError, match="unit_hz"):
        SlicingEnv(unit_hz=100e3)
    with pytest.raises(ValueError, match="num_users"):
        SlicingEnv(num_users=2000)
    with pytest.raises(TypeError, match="num_slots"):
        SlicingEnv(num_slots=2.5)
    with pytest.raises(ValueError, match="slice_probs must sum to 1"):
        env.make_params(slice_probs=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="sla_delay_s"):
        env.make_params(sla_delay_s=[0.01, 0.0, 0.003])
    with pytest.raises(ValueError, match="reward_low"):
        env.make_params(reward_low=7.0)
    with pytest.raises(TypeError, match="episode_length"):
        env.make_params(episode_length=2.5)
    with pytest.raises(ValueError, match="split"):
        env.action_from_split((5, 5, 5))
    with pytest.raises(ValueError, match="split"):
        env.action_from_split((0, 5, 5))
    with pytest.raises(ValueError, match="action"):
        env.split_from_action(36)
    env.check_params(env.default_params)
    SlicingEnv(urllc="large").check_params(SlicingEnv(urllc="large").default_params)


# ---------------------------------------------------------------------- traffic and draws
def _lomax_capped_mean(scale, cap, a):
    return scale / (a - 1) * (1 - (1 + cap / scale) ** (1 - a))


def test_traffic_generators_match_their_distributions(env):
    p = env.default_params
    n = 200_000
    u = jax.random.uniform(jax.random.key(0), (n,))
    ones = jnp.ones(n, jnp.int32)
    gap = {k: np.asarray(traffic.gap_seconds(k * ones, u, p), np.float64) for k in range(3)}
    size = {k: np.asarray(traffic.packet_bits(k * ones, u, p), np.float64) for k in range(3)}
    # VoLTE: 40 B, inter-arrival U(0, 160 ms), mean 80 ms
    assert (size[0] == 320).all()
    assert abs(gap[0].mean() - 0.080) < 0.001 and gap[0].max() < 0.160 and gap[0].min() >= 0
    # video: capped Lomax(1.2) sizes (scale 100 B, cap 250 B) and gaps (6 ms, cap 12.5 ms)
    assert size[1].max() <= 2000 and size[1].min() >= 0
    assert abs(size[1].mean() / _lomax_capped_mean(800, 2000, 1.2) - 1) < 0.01
    assert abs((size[1] == 2000).mean() - 3.5 ** -1.2) < 0.005
    assert gap[1].max() <= 0.0125 + 1e-9
    assert abs(gap[1].mean() / _lomax_capped_mean(6e-3, 12.5e-3, 1.2) - 1) < 0.01
    assert abs((gap[1] >= 0.0125 - 1e-9).mean() - (1 + 12.5 / 6) ** -1.2) < 0.005
    # URLLC: exponential inter-arrival, mean 180 ms; sizes uniform over the 5 values
    assert abs(gap[2].mean() / 0.180 - 1) < 0.01
    assert abs(np.median(gap[2]) / (0.18 * math.log(2)) - 1) < 0.02
    values, counts = np.unique(size[2], return_counts=True)
    np.testing.assert_allclose(values, np.asarray(p.urllc_sizes_bits), rtol=1e-6)
    assert np.abs(counts / n - 0.2).max() < 0.005
    # whole slots: max(1, ceil(X / slot))
    slots = np.asarray(traffic.gap_slots(ones * 0, u, p))
    np.testing.assert_array_equal(slots, np.maximum(1, np.ceil(np.asarray(
        traffic.gap_seconds(ones * 0, u, p)) / np.float32(5e-4))))


def test_draws_have_the_right_moments_and_no_correlation(env):
    p = env.default_params
    slice_id = jnp.zeros(100, jnp.int32)  # VoLTE: the gap uniform is visible as X / 160 ms
    d = D.draw_decision(D.decision_seed(jax.random.key(1)), 2000, slice_id, p)
    z = np.asarray(d.shadow_db, np.float64) / 8.0
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((z ** 4).mean() - 3) < 0.05 and np.isfinite(z).all()
    ug = np.asarray(d.gap_slots, np.float64)
    assert abs(ug.mean() - 160.5) < 0.5
    for a, b in [(z[:, :-1], z[:, 1:]), (z[:-1], z[1:])]:  # neighbour users, slots
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(z.ravel(), ug.ravel())[0, 1]) < 0.01
    other = D.draw_decision(D.decision_seed(jax.random.key(2)), 2000, slice_id, p)
    assert abs(np.corrcoef(z.ravel(), np.asarray(other.shadow_db).ravel())[0, 1]) < 0.01


def test_in_scan_draws_equal_draw_decision(tiny):
    env = tiny
    p = env.default_params
    _, state = env.reset(jax.random.key(0), p)
    rbs = env.rbs_from_action(jnp.int32(5))
    key = jax.random.key(7)
    live = jax.jit(env.simulate)(key, state, rbs, p)
    d = D.draw_decision(D.decision_seed(key), env.num_slots, state.slice_id, p)
    replay = physics.simulate(state, rbs, d, lambda t, x: x, env.queue_len, 10e6, p)
    for name in ("arrived", "delivered", "satisfied", "blocked", "dropped", "timer"):
        np.testing.assert_array_equal(getattr(live, name), getattr(replay, name))
    np.testing.assert_allclose(live.se, replay.se, rtol=1e-6)  # jit vs eager rounding


# ---------------------------------------------------------------------- physics vs NumPy
def test_round_robin_matches_reference():
    rng = np.random.default_rng(0)
    rr = jax.jit(physics.round_robin)
    for _ in range(100):
        u = 24
        sl, act = rng.integers(0, 3, u), rng.random(u) < 0.5
        rbs, ptr = rng.integers(0, 30, 3), rng.integers(0, u + 1, 3)
        got, got_ptr = rr(jnp.asarray(act), jnp.asarray(sl, jnp.int32),
                          jnp.asarray(rbs, jnp.int32), jnp.asarray(ptr, jnp.int32))
        want, want_ptr = np.zeros(u, int), ptr.copy()
        for k in range(3):
            active = [i for i in range(u) if sl[i] == k and act[i]]
            if active:
                base, extra = divmod(int(rbs[k]), len(active))
                order = ref.rr_order(active, ptr[k])
                for i, user in enumerate(order):
                    want[user] = base + (i < extra)
                if extra:
                    want_ptr[k] = order[extra - 1] + 1
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_ptr, want_ptr)


CASES = [("small", (3, 3, 4), {}), ("small", (1, 1, 8), {}), ("small", (8, 1, 1), {}),
         ("large", (1, 8, 1), {}), ("large", (2, 2, 6), {}),
         ("small", (4, 3, 3), dict(rate_factor=0.05, video_size_cap_bits=4e4))]  # full queues


@pytest.mark.parametrize("urllc,split,overrides", CASES)
def test_window_matches_numpy_reference(urllc, split, overrides):
    e = SlicingEnv(num_slots=S, urllc=urllc)
    p = e.make_params(**overrides)
    _, state = e.reset(jax.random.key(3), p)
    rbs = e.rbs_from_action(jnp.int32(e.action_from_split(split)))
    d = D.draw_decision(D.decision_seed(jax.random.key(sum(split))), S, state.slice_id, p)
    got = jax.jit(lambda s, d: physics.simulate(s, rbs, d, lambda t, x: x, e.queue_len,
                                                10e6, p))(state, d)
    want = ref.run_window(
        np.asarray(state.slice_id), np.asarray(state.pathloss_db, np.float64),
        np.asarray(state.timer), np.asarray(rbs), {k: np.asarray(v) for k, v in vars(d).items()},
        {k: np.asarray(v).tolist() for k, v in vars(p).items()}, e.queue_len, 10e6)
    for name in ("arrived", "delivered", "satisfied", "blocked", "dropped", "timer"):
        np.testing.assert_array_equal(getattr(got, name), want[name], err_msg=name)
    np.testing.assert_allclose(float(got.se), want["se"], rtol=1e-5)
    np.testing.assert_array_equal(got.arrived, np.asarray(got.delivered) + np.asarray(got.dropped))
    if overrides:
        assert np.asarray(got.blocked).sum() > 0 and np.asarray(got.dropped).sum() > 0


# ---------------------------------------------------------------------- the env API
def test_check_env_and_registry():
    e = make("slicing-v0", num_users=40, num_slots=50)
    check_env(e, e.make_params(episode_length=4), num_steps=6)


def test_step_info_reward_and_episode_end(env):
    p = env.make_params(episode_length=2, reward_high=5.0, reward_low=4.0)
    obs, state = env.reset(jax.random.key(0), p)
    np.testing.assert_array_equal(obs, 0.0)
    step = jax.jit(env.step)
    obs, state, reward, term, trunc, info = step(jax.random.key(1), state, jnp.int32(7), p)
    for name in ("arrived", "delivered", "satisfied", "dropped", "blocked", "rbs", "ssr"):
        assert info[name].shape == (3,)
    np.testing.assert_array_equal(info["arrived"], info["delivered"] + info["dropped"])
    assert ((info["ssr"] >= 0) & (info["ssr"] <= 1)).all()
    util = 0.01 * float(info["se"]) + float(jnp.sum(info["ssr"]))
    assert abs(float(info["utility"]) - util) < 1e-4
    assert float(reward) == (1.0 if util >= 5.0 else -1.0 if util <= 4.0 else 0.0)
    np.testing.assert_allclose(obs, np.asarray((info["arrived"] - info["arrived"].mean())
                                               / info["arrived"].std()), rtol=1e-5)
    np.testing.assert_array_equal(state.arrived, info["arrived"])
    assert not bool(trunc) and not bool(term) and int(state.t) == 1
    *_, trunc, _ = step(jax.random.key(2), state, jnp.int32(7), p)
    assert bool(trunc)
    out = step(jax.random.key(3), state, jnp.int32(99), p)  # illegal -> action 0
    assert out[5]["rbs"].tolist() == env.rbs_table[0].tolist()


def test_jit_vmap_over_twins_with_their_own_params(tiny):
    env = tiny
    base = env.default_params
    other = base.replace(rate_factor=jnp.float32(8.0))
    stacked = jax.tree.map(lambda *x: jnp.stack(x), base, other)
    keys = jax.random.split(jax.random.key(0), 2)
    _, states = jax.vmap(env.reset)(keys, stacked)
    actions = jnp.asarray([3, 30], jnp.int32)
    out = jax.jit(jax.vmap(env.step))(keys, states, actions, stacked)
    for i in range(2):
        p_i = jax.tree.map(lambda x, i=i: x[i], stacked)
        s_i = jax.tree.map(lambda x, i=i: x[i], states)
        one = jax.jit(env.step)(keys[i], s_i, actions[i], p_i)
        np.testing.assert_allclose(out[5]["utility"][i], one[5]["utility"], rtol=1e-5)
        np.testing.assert_array_equal(out[5]["satisfied"][i], one[5]["satisfied"])
    assert float(out[5]["se"][1]) < float(out[5]["se"][0])  # rate_factor 8 < 64


def test_runs_in_x64_and_is_deterministic(tiny):
    env = tiny
    with jax.enable_x64(True):
        obs, state = jax.jit(env.reset)(jax.random.key(0))
        out = jax.jit(env.step)(jax.random.key(1), state, jnp.int32(4))
    again = jax.jit(env.step)(jax.random.key(1), env.reset(jax.random.key(0))[1], jnp.int32(4))
    np.testing.assert_array_equal(out[5]["satisfied"], again[5]["satisfied"])
    assert np.isfinite(np.asarray(out[5]["utility"]))


# ---------------------------------------------------------------------- baselines
def test_baselines(env):
    assert equal_split(10) == (4, 3, 3) and equal_split(50) == (17, 17, 16)
    p = env.default_params
    obs, state = env.reset(jax.random.key(0), p)
    a = equal_split_policy(env)(jax.random.key(1), obs, state, p)
    assert env.split_from_action(int(a)) == (4, 3, 3)
    r = jax.vmap(random_policy(env), (0, None, None, None))(
        jax.random.split(jax.random.key(2), 64), obs, state, p)
    assert ((r >= 0) & (r < env.num_actions)).all() and len(np.unique(r)) > 10
    small = SlicingEnv(num_users=20, num_slots=40, bandwidth_hz=5e6, unit_hz=1e6)
    best = best_fixed_split(small, small.default_params, jax.random.key(0), num_twins=2,
                            num_decisions=2)
    assert best["utility"].shape == (small.num_actions,) == (6,)
    assert best["action"] == int(np.argmax(best["utility"]))
    assert best["split"] == small.split_from_action(best["action"])
