"""dnt-sync-v0: physics vs the NumPy/SciPy reference on identical draws, allocation invariants
and per-BS optimality, masks, observation, long rollouts, jit/vmap over twins, validation,
baseline policies. check_env, x64, jit with params omitted and checked mode: in
test_conformance.py (registry line)."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from dtwin_jax.envs.dnt_sync import DntSyncEnv, physics, policies
from dtwin_jax.envs.dnt_sync.types import SlotDraws
from dtwin_jax.envs.testing import check_env

sys.path.insert(0, os.path.dirname(__file__))
import dnt_numpy_reference as ref  # noqa: E402

_slot = jax.jit(physics.slot)


def _random_slot(seed, env, params, p_serve=0.5, p_update=0.6):
    """Random positions, prediction, draws and decisions of one slot (NumPy, float32)."""
    rng = np.random.default_rng(seed)
    u, m, n = env.num_users, env.num_bs, env.num_rbs
    lo = np.asarray(params.mobility.area_min)
    hi = np.asarray(params.mobility.area_max)
    pos = (lo + rng.random((u, 2)) * (hi - lo)).astype(np.float32)
    pred = (pos + rng.normal(0, 6, (u, 2))).astype(np.float32)
    fading = rng.exponential(size=(u, m, n)).astype(np.float32)
    up = rng.exponential(size=(m, n)).astype(np.float32)
    update = rng.random(m) < p_update
    serve = rng.random((m, u)) < p_serve
    return pos, pred, fading, up, update, serve


def _run_slot(args, params):
    pos, pred, fading, up, update, serve = args
    return _slot(pos, pred, SlotDraws(fading, up), update, serve, params)


@pytest.fixture(scope="module")
def env():
    return DntSyncEnv(predictor="persistence")


@pytest.mark.parametrize("seed", range(6))
def test_slot_matches_numpy_reference(env, seed):
    # update_size 6: the outer BSs' updates miss the delay threshold; seed 5: no overlap
    params = env.make_params(update_size=6.0 if seed % 2 else 1.0, eps=0.2 + 0.1 * seed)
    args = _random_slot(seed, env, params, p_serve=0.2 if seed == 5 else 0.5)
    res = _run_slot(args, params)
    want = ref.slot(*[np.asarray(a, np.float64) if a.dtype == np.float32 else a
                      for a in args], ref.to_numpy(params))
    for name in ("serve", "update_ok", "alloc", "rb_user", "served_by", "exact"):
        np.testing.assert_array_equal(np.asarray(getattr(res, name)), want[name], err_msg=name)
    for name in ("update_rate", "rates", "rate_bs", "twin", "user_error", "twin_error",
                 "reward", "team_reward"):
        np.testing.assert_allclose(np.asarray(getattr(res, name)), want[name], rtol=1e-4,
                                   atol=1e-3, err_msg=name)


def test_reference_cases_cover_all_branches(env):
    """The seeds above see failed updates, overlaps and overlap-free slots."""
    seen = {"failed": False, "overlap": False, "clean": False}
    for seed in range(6):
        params = env.make_params(update_size=6.0 if seed % 2 else 1.0)
        args = _random_slot(seed, env, params, p_serve=0.2 if seed == 5 else 0.5)
        res = _run_slot(args, params)
        seen["failed"] |= bool(np.any(np.asarray(res.update) & ~np.asarray(res.update_ok)))
        seen["overlap"] |= bool(np.any(np.asarray(res.served_by) == -2))
        seen["clean"] |= not bool(np.any(np.asarray(res.served_by) == -2))
    assert all(seen.values()), seen


@pytest.mark.parametrize("seed", range(8))
def test_allocation_invariants_and_per_bs_optimality(seed):
    env = DntSyncEnv(num_bs=3, num_users=10 + seed % 4, num_rbs=6 + seed % 3,
                     predictor="persistence")
    params = env.make_params(coverage_radius=90.0)
    args = _random_slot(100 + seed, env, params, p_serve=0.7)
    res = _run_slot(args, params)
    alloc = np.asarray(res.alloc)  # [U, M, N]
    serve = np.asarray(res.serve)
    rb_user = np.asarray(res.rb_user)
    reserved = rb_user == -2
    assert set(np.unique(alloc)) <= {0.0, 1.0}
    assert np.all(alloc.sum(axis=0) <= 1), "an RB of a BS went to two users"
    assert np.all(alloc.sum(axis=2) <= 1), "a user got two RBs of one BS"
    assert np.all(alloc.max(axis=2) <= serve.T), "an RB went to a user the BS did not serve"
    assert not np.any(alloc.max(axis=0)[reserved]), "the update RB also carries a user"
    np.testing.assert_array_equal(reserved.sum(1), np.asarray(res.update).astype(int))
    # rb_user agrees with alloc
    for m in range(env.num_bs):
        for r in range(env.num_rbs):
            users = np.nonzero(alloc[:, m, r])[0]
            assert rb_user[m, r] == (users[0] if len(users) else (-2 if reserved[m, r] else -1))
    # each BS's allocation maximises its sum rate given the BSs before it (scipy optimum)
    pos, _, fading, _, _, _ = args
    dist = np.linalg.norm(pos[None] - np.asarray(params.bs_xy)[:, None], axis=-1)
    gain = fading * (np.maximum(dist, 1.0) ** -2.0).T[:, :, None]
    noise = 1e-5
    interference = np.zeros((env.num_users, env.num_rbs))
    for m in range(env.num_bs):
        rate = np.log2(1.0 + gain[:, m] / (interference + noise))
        allowed = serve[m][:, None] & ~reserved[m][None, :]
        rows, cols = scipy.optimize.linear_sum_assignment(np.where(allowed, rate, -1e9), True)
        keep = allowed[rows, cols]
        best = rate[rows[keep], cols[keep]].sum()
        got = (alloc[:, m] * rate).sum()
        assert keep.sum() == alloc[:, m].sum(), "not a maximum-cardinality matching"
        np.testing.assert_allclose(got, best, rtol=1e-5)
        interference += gain[:, m] * alloc[:, m].max(axis=0)[None, :]


def test_masks_flat_and_factored_agree_and_match_reference():
    rng = np.random.default_rng(0)
    for u in (3, 6):
        cov = rng.random((3, u)) < 0.5
        flat = np.asarray(physics.flat_mask(jnp.asarray(cov)))
        fact = np.asarray(physics.factored_mask(jnp.asarray(cov)))
        assert flat.shape == (3, 2 ** (u + 1)) and fact.shape == (3, u + 1, 2)
        np.testing.assert_array_equal(flat, ref.flat_mask(cov))
        np.testing.assert_array_equal(fact, ref.factored_mask(cov))
        idx = np.arange(2 ** (u + 1))
        bits = (idx[:, None] >> np.arange(u + 1)) & 1  # [A, U+1] factor values of each index
        for m in range(3):
            legal_by_factor = fact[m][np.arange(u + 1), bits].all(-1)
            np.testing.assert_array_equal(flat[m], legal_by_factor)
            # decoding a legal flat index never serves an uncovered user
            upd, serve = physics.decode_flat(jnp.asarray(idx[flat[m]][:, None].repeat(1, 1)),
                                             u)
            assert not np.any(np.asarray(serve) & ~cov[m])


def test_illegal_serve_bits_are_dropped_and_out_of_range_values_are_zero(env):
    params = env.default_params
    args = list(_random_slot(3, env, params, p_serve=1.0))
    res = _run_slot(args, params)
    pos = args[0]
    dist = np.linalg.norm(pos[None] - np.asarray(params.bs_xy)[:, None], axis=-1)
    np.testing.assert_array_equal(np.asarray(res.serve), dist <= 60.0)
    upd, serve = physics.decode_flat(jnp.array([-5, 2 ** 20, 7]), 3)
    np.testing.assert_array_equal(np.asarray(upd), [False, False, True])
    np.testing.assert_array_equal(np.asarray(serve), [[0, 0, 0], [0, 0, 0], [1, 1, 0]])
    upd, serve = physics.decode_factored(jnp.array([[1, 2, 1], [-1, 0, 0]]))
    np.testing.assert_array_equal(np.asarray(upd), [True, False])
    np.testing.assert_array_equal(np.asarray(serve), [[False, True], [False, False]])


def test_features_match_reference(env):
    params = env.default_params
    rng = np.random.default_rng(1)
    pos, *_ = _random_slot(1, env, params)
    stale = rng.integers(0, 40, env.num_users)
    last = rng.random(env.num_bs) < 0.5
    since = rng.integers(0, 40, env.num_bs)
    got = physics.features(jnp.asarray(pos), jnp.asarray(stale, jnp.int32), jnp.asarray(last),
                           jnp.asarray(since, jnp.int32), params)
    want = ref.features(pos, stale, last, since, ref.to_numpy(params))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    assert got.shape == (3, env.feature_dim) and got.dtype == jnp.float32
    assert bool(env.observation_space().contains(got[0]))


def test_env_step_composes_draws_predictor_and_physics(env):
    """``step_env`` = draw_slot(k_draw) + predictor(history) + slot, then the walk."""
    params = env.default_params
    key = jax.random.PRNGKey(5)
    _, state = env.reset(jax.random.PRNGKey(1), params)
    action = jnp.array([1 + 2 + 8, 1 + 4, 0], jnp.int32)
    obs, nxt, reward, _, _, info = jax.jit(env.step_env)(key, state, action, params)
    k_draw, k_mob = jax.random.split(key)
    draws = physics.draw_slot(k_draw, env.num_users, env.num_bs, env.num_rbs)
    upd, serve = env.decode(action, params)
    res = _slot(state.mobility.pos, state.history[-1], draws, upd, serve, params)
    np.testing.assert_allclose(np.asarray(reward), np.asarray(res.reward), rtol=1e-5)
    np.testing.assert_allclose(float(info["twin_error"]), float(res.twin_error), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(nxt.history[-1]), np.asarray(res.twin))
    walk = env.walk.step(k_mob, state.mobility, params.mobility)
    np.testing.assert_allclose(np.asarray(nxt.mobility.pos), np.asarray(walk.pos))
    assert int(nxt.t) == 1


def test_factored_form_steps_like_flat():
    flat = DntSyncEnv(predictor="persistence")
    fact = DntSyncEnv(predictor="persistence", action_form="factored")
    params = flat.default_params
    _, state = flat.reset(jax.random.PRNGKey(0), params)
    upd = jnp.array([True, False, True])
    serve = jax.random.uniform(jax.random.PRNGKey(1), (3, 12)) < 0.5
    a_flat = policies.encode(flat, upd, serve)
    a_fact = policies.encode(fact, upd, serve)
    key = jax.random.PRNGKey(2)
    out_f = jax.jit(flat.step_env)(key, state, a_flat, params)
    out_m = jax.jit(fact.step_env)(key, state, a_fact, params)
    np.testing.assert_array_equal(np.asarray(out_f[2]), np.asarray(out_m[2]))
    np.testing.assert_array_equal(np.asarray(out_f[5]["rb_user"]),
                                  np.asarray(out_m[5]["rb_user"]))
    cov = np.asarray(out_m[0].features[:, :12]) > 0
    np.testing.assert_array_equal(np.asarray(out_m[0].action_mask), ref.factored_mask(cov))


def _rollout(env, params, num_steps, seed=0):
    policy = policies.random_policy(env)

    def run(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            obs, state = carry
            k_a, k_s = jax.random.split(k)
            action = policy(k_a, obs, state, params)
            obs, state, reward, term, trunc, info = env.step(k_s, state, action, params)
            return (obs, state), (obs, reward, trunc, info)

        return jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))[1]

    return jax.jit(run)(jax.random.PRNGKey(seed))


@pytest.mark.parametrize("form,num_users", [("flat", 12), ("factored", 20)])
def test_long_random_rollout_is_finite_and_well_formed(form, num_users):
    env = DntSyncEnv(num_users=num_users, action_form=form)
    params = env.make_params(episode_length=40)
    obs, reward, trunc, info = _rollout(env, params, 300)
    jax.tree.map(lambda x: np.testing.assert_array_equal(np.isfinite(np.asarray(x, float)),
                                                         True), (obs, reward, info))
    assert np.asarray(trunc).sum() == 300 // 40
    assert info["rb_user"].shape == (300, 3, 12) and info["rb_user"].dtype == jnp.int32
    assert info["served_by"].shape == (300, num_users)
    assert info["update_ok"].dtype == jnp.bool_ and info["rates"].shape == (300, num_users)
    assert bool(jnp.all(info["update_ok"] <= info["update"]))
    assert float(jnp.min(info["twin_error"])) >= 0.0
    space = env.observation_space()
    assert bool(jax.vmap(jax.vmap(space.contains))(obs.features).all())
    # team reward follows the rule: overlap penalty, or the weighted objective
    overlap = np.asarray((info["served_by"] == -2).sum(-1))
    team = np.asarray(info["team_reward"])
    np.testing.assert_allclose(team[overlap > 0], -1.0 * overlap[overlap > 0])
    clean = overlap == 0
    want = (-(0.7 / num_users) * np.asarray(info["twin_error"]) + 0.3
            * np.asarray(info["sum_rate"]))
    np.testing.assert_allclose(team[clean], want[clean], rtol=1e-4, atol=1e-4)


def test_check_env_passes_with_factored_actions():
    """The registry's flat form runs in test_conformance.py; here the factored form."""
    env = DntSyncEnv(num_users=14, predictor="persistence")
    assert env.action_form == "factored"
    _, _, term, trunc, _ = check_env(env, env.make_params(episode_length=5), num_steps=12)
    assert np.asarray(term | trunc).any()


def test_jit_and_vmap_over_twins_match_single_twins(env):
    eps = [0.25, 0.5, 0.99]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[env.make_params(eps=e) for e in eps])
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    policy = policies.update_and_serve_all_policy(env)

    def one(key, params):
        obs, state = env.reset(key, params)
        action = policy(key, obs, state, params)
        return env.step(key, state, action, params)

    batched = jax.jit(jax.vmap(one))(keys, stacked)
    for i, e in enumerate(eps):
        single = jax.jit(one)(keys[i], env.make_params(eps=e))
        np.testing.assert_allclose(np.asarray(batched[2][i]), np.asarray(single[2]), rtol=1e-5)
        np.testing.assert_allclose(float(batched[5]["team_reward"][i]),
                                   float(single[5]["team_reward"]), rtol=1e-5)
    assert batched[0].features.shape == (3, 3, env.feature_dim)


@pytest.mark.parametrize("field,value,match", [
    ("eps", 1.5, "eps"),
    ("rho", 0.5, "rho"),
    ("coverage_radius", 0.5, "coverage_radius"),
    ("noise_density", 0.0, "noise_density"),
    ("episode_length", 2.5, "episode_length"),
    ("bs_xy", np.zeros((2, 2)), "bs_xy"),
    ("mobility", {"step_length": -1.0}, "step_length"),
    ("nope", 1.0, "no parameter"),
])
def test_bad_params_are_refused_naming_the_field(env, field, value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        env.make_params(**{field: value})


def test_bad_constructor_args_and_actions():
    with pytest.raises(ValueError, match="action_form='flat' needs num_users <= 12"):
        DntSyncEnv(num_users=13, action_form="flat", predictor="persistence")
    with pytest.raises(ValueError, match="action_form"):
        DntSyncEnv(action_form="tree", predictor="persistence")
    with pytest.raises(ValueError, match="num_rbs"):
        DntSyncEnv(num_rbs=0, predictor="persistence")
    with pytest.raises(ValueError, match="predictor must map"):
        DntSyncEnv(predictor=lambda h: h)
    with pytest.raises(TypeError, match="predictor"):
        DntSyncEnv(predictor=3)
    assert DntSyncEnv(num_users=13, predictor="persistence").action_form == "factored"
    env = DntSyncEnv(predictor="persistence")
    _, state = env.reset(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="action has shape"):
        env.step(jax.random.PRNGKey(0), state, jnp.zeros((3, 13), jnp.int32))
    with pytest.raises(TypeError, match="action has dtype float32"):
        env.step(jax.random.PRNGKey(0), state, jnp.zeros(3, jnp.float32))


def test_custom_predictor_is_used():
    env = DntSyncEnv(predictor=lambda h: jnp.zeros(h.shape[1:], h.dtype))
    _, state = env.reset(jax.random.PRNGKey(0))
    _, nxt, _, _, _, info = env.step(jax.random.PRNGKey(0), state, jnp.zeros(3, jnp.int32))
    # no update: every user's twin state is the prediction (the origin)
    np.testing.assert_array_equal(np.asarray(nxt.history[-1]), 0.0)
    np.testing.assert_allclose(float(info["twin_error"]),
                               float(jnp.sum(state.mobility.pos ** 2)), rtol=1e-5)


@pytest.mark.parametrize("form", ["flat", "factored"])
def test_baseline_policies_are_legal_and_behave(form):
    env = DntSyncEnv(action_form=form, predictor="persistence")
    params = env.default_params
    space = env.action_space()
    pols = {"random": policies.random_policy(env), "all": policies.update_and_serve_all_policy(env),
            "nearest": policies.nearest_bs_policy(env, update_period=2)}

    @jax.jit
    def run(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            obs, state = carry
            out = {}
            for name, pol in pols.items():
                action = pol(k, obs, state, params)
                step = env.step(k, state, action, params)
                out[name] = (jax.vmap(space.contains)(action, obs.action_mask).all(),
                             step[5], obs.features, state.t)
            return (step[0], step[1]), out  # follow the nearest-BS policy

        return jax.lax.scan(body, (obs, state), jax.random.split(key, 8))[1]

    out = run(jax.random.PRNGKey(4))
    for name, result in out.items():
        assert bool(result[0].all()), name
    _, info, feats, t = out["nearest"]
    assert not np.any(np.asarray(info["served_by"]) == -2)
    np.testing.assert_array_equal(np.asarray(info["update"]),
                                  np.repeat((np.asarray(t) % 2 == 0)[:, None], 3, axis=1))
    _, info, feats, _ = out["all"]
    assert bool(info["update"].all())
    covered = (np.asarray(feats[:, :, :12]) > 0).any(1)
    np.testing.assert_array_equal(np.asarray(info["served_by"]) != -1, covered)
