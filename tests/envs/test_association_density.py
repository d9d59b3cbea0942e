"""association-v0: the density process, the paper state against NumPy, the handover cost."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.envs.association import AssociationEnv, random_policy
from dtwin_jax.envs.association.generator import presence_probs, target_users

U = 24


@pytest.fixture(scope="module")
def env():
    return AssociationEnv(num_bs=5, num_macro=1, max_users=U, num_candidates=3,
                          mobility="waypoint", area_m=300.0, shadow_cell_m=10.0)


def test_presence_probs_reach_the_target_in_expectation():
    for n, target, churn in [(10, 14.0, 0.0), (10, 6.0, 0.0), (10, 10.0, 0.1), (20, 17.5, 0.3),
                             (0, 5.0, 0.2), (12, 3.0, 0.5)]:
        p_leave, p_arrive = (float(x) for x in presence_probs(jnp.int32(n), jnp.float32(target),
                                                              jnp.float32(churn), U))
        assert 0.0 <= p_leave <= 1.0 and 0.0 <= p_arrive <= 1.0
        assert p_leave >= churn - 1e-7
        np.testing.assert_allclose(n * (1 - p_leave) + (U - n) * p_arrive, target, rtol=1e-6)


def test_target_profile_closed_form(env):
    params = env.make_params(num_users=12, density_amp=0.5, density_period=16.0)
    for t, phase in [(0, 0.0), (4, 0.0), (3, 0.3), (40, 0.9)]:
        want = 12 * (1 + 0.5 * np.sin(2 * np.pi * (t / 16 + phase)))
        got = float(target_users(jnp.int32(t), jnp.float32(phase), params, U))
        np.testing.assert_allclose(got, want, rtol=1e-5)
    big = env.make_params(num_users=20, density_amp=1.0)
    assert float(target_users(jnp.int32(16), jnp.float32(0.0), big, U)) == U  # clipped


def _run_counts(env, params, num_twins=128, steps=24):
    """Active counts [steps+1, K] and density targets n*(t) [steps+1, K] of K twins."""
    def one(key):
        obs, state = env.reset_env(key, params)

        def body(carry, k):
            obs, state = carry
            k_a, k_s = jax.random.split(k)
            a = random_policy(env)(k_a, obs, state, params)
            obs, state, *_ = env.step_env(k_s, state, a, params)
            return (obs, state), (state.active.sum(), state.t, state.phase)

        first = (state.active.sum(), state.t, state.phase)
        _, rest = jax.lax.scan(body, (obs, state), jax.random.split(key, steps))
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)

    n, t, phase = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), num_twins))
    target = jax.vmap(jax.vmap(lambda ti, ph: target_users(ti, ph, params, U)))(t, phase)
    return np.asarray(n).T, np.asarray(target).T


def test_density_process_tracks_the_profile(env):
    params = env.make_params(num_users=12, density_amp=0.5, density_period=16.0, churn=0.05,
                             episode_length=64)
    n, target = _run_counts(env, params)
    assert n.min() >= 0 and n.max() <= U
    assert np.ptp(target[:, 0]) > 8  # the profile moves (12 +- 6 users)
    # E[n_t] = n*(t) exactly (from step 1) unless a clip binds; 128 twins, binomial noise
    err = (n - target)[1:].mean(axis=1)
    assert np.abs(err).max() < 1.0 and abs(err.mean()) < 0.3
    np.testing.assert_allclose(np.corrcoef(n[1:].ravel(), target[1:].ravel())[0, 1], 1, atol=0.1)


def test_static_without_amplitude_and_churn(env):
    n, _ = _run_counts(env, env.make_params(num_users=9, density_amp=0.0, churn=0.0),
                       num_twins=4, steps=10)
    assert (n == 9).all()


def test_paper_features_match_numpy(env):
    params = env.make_params(num_users=15, load_ref=4.0)
    obs, state = jax.jit(env.reset_env)(jax.random.PRNGKey(3), params)
    obs, state, *_ = jax.jit(env.step_env)(jax.random.PRNGKey(4), state,
                                           jnp.ones(U, jnp.int32), params)
    sinr = np.asarray(state.sinr, np.float64)
    assoc, active = np.asarray(state.assoc), np.asarray(state.active)
    cand = np.argsort(-sinr, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(np.asarray(state.candidates), cand)
    top_db = 10 * np.log10(np.take_along_axis(sinr, cand, 1))
    load = np.bincount(assoc[active], minlength=5).astype(float)
    want = np.concatenate([np.clip((top_db - 10) / 20, -10, 10),
                           np.clip(load[cand] / 4.0, 0, 20),
                           (cand == assoc[:, None]).astype(float)], axis=1)
    assert obs.features.shape == (U, 9) and env.observation_space().shape == (9,)
    np.testing.assert_allclose(np.asarray(obs.features), want, atol=1e-4)
    assert len(np.unique(load)) > 1  # loads differ, so the feature is informative


def test_rich_observation_is_the_ablation():
    rich = AssociationEnv(num_bs=5, num_macro=1, max_users=U, num_candidates=3,
                          mobility="waypoint", area_m=300.0, observation="rich")
    obs, _ = rich.reset_env(jax.random.PRNGKey(0), rich.make_params(num_users=10))
    assert obs.features.shape == (U, 12) and rich.observation_space().shape == (12,)
    with pytest.raises(ValueError, match="observation"):
        AssociationEnv(num_bs=5, num_macro=1, max_users=U, observation="oracle")


def test_handover_cost_in_reward(env):
    base = env.make_params(num_users=15)
    assert float(base.w_handover) > 0 and float(base.decision_prob) == 1.0  # the defaults
    _, state = jax.jit(env.reset_env)(jax.random.PRNGKey(5), base)
    action = jnp.full(U, 2, jnp.int32)  # the third candidate: many users hand over
    step = jax.jit(env.step_env)
    key = jax.random.PRNGKey(6)
    _, _, r_cost, *_, info = step(key, state, action, base.replace(w_handover=jnp.float32(0.7)))
    _, _, r_free, *_ = step(key, state, action, base.replace(w_handover=jnp.float32(0.0)))
    ho = np.asarray(state.active) & (np.asarray(env.chosen_bs(state, action))
                                     != np.asarray(state.assoc))
    assert ho.sum() == int(info["handovers"]) > 0
    np.testing.assert_allclose(np.asarray(r_free) - np.asarray(r_cost), 0.7 * ho, atol=1e-5)
