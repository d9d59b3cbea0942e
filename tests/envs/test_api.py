import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import CounterEnv, MaskedTeamEnv

from dtwin_jax.envs import Box, Discrete, MultiDiscrete, make, register, registered_envs
from dtwin_jax.envs.testing import check_env
from dtwin_jax.envs.wrappers import VecEnv


def test_discrete_sample_respects_mask():
    space = Discrete(5)
    mask = jnp.array([False, True, False, True, False])
    draws = jax.vmap(lambda k: space.sample(k, mask))(jax.random.split(jax.random.PRNGKey(0), 500))
    assert set(np.unique(np.asarray(draws))) == {1, 3}
    assert bool(space.contains(jnp.int32(4))) and not bool(space.contains(jnp.int32(5)))


def test_multidiscrete_and_box_contains_samples():
    md = MultiDiscrete((2, 3, 7))
    box = Box(-1.0, 2.0, (4,))
    for k in jax.random.split(jax.random.PRNGKey(1), 50):
        assert bool(md.contains(md.sample(k)))
        assert bool(box.contains(box.sample(k)))
    assert not bool(md.contains(jnp.array([1, 3, 0])))
    assert not bool(box.contains(jnp.array([0.0, 0.0, 0.0, 2.5])))
    with pytest.raises(ValueError, match="Box.low"):
        Box(1.0, 0.0, (1,))
    with pytest.raises(ValueError, match="Discrete.n"):
        Discrete(0)


def test_step_auto_resets_and_keeps_final_observation():
    env = CounterEnv()
    params = env.default_params
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    for t in range(params.horizon):
        obs, state, reward, term, trunc, info = env.step(jax.random.PRNGKey(t), state, 1, params)
    assert bool(trunc)
    assert float(info["final_observation"][0]) == pytest.approx(1.0)
    assert int(state.t) == 0 and float(obs[0]) == 0.0


@pytest.mark.parametrize("env", [CounterEnv(), MaskedTeamEnv()])
def test_check_env_passes_on_probe_envs(env):
    traj = check_env(env, num_steps=12)
    assert traj[1].shape[0] == 12


def test_check_env_catches_retrace():
    class Retracing(CounterEnv):
        def reset_env(self, key, params):  # a weakly typed scalar in reset's state ...
            obs, state = super().reset_env(key, params)
            return obs, state.replace(total=jnp.asarray(0.0))  # ... is strong after a step

    with pytest.raises(AssertionError):
        check_env(Retracing(), num_steps=4)


def test_vecenv_resets_only_done_twins_with_per_twin_params():
    env = CounterEnv()
    vec = VecEnv(env, 3)
    params = vec.batch_params().replace(horizon=jnp.array([2, 3, 4]))
    obs, state = vec.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(vec.step)
    ts = []
    for i in range(4):
        obs, state, reward, term, trunc, info = step(jax.random.PRNGKey(i), state, jnp.ones(3, int),
                                                     params)
        ts.append(np.asarray(state.t))
    np.testing.assert_array_equal(np.stack(ts), [[1, 1, 1], [0, 2, 2], [1, 0, 3], [0, 1, 0]])
    chex.assert_shape(info["final_observation"], (3, 1))


class CarryOverEnv(CounterEnv):
    """Keeps the reward total of all finished episodes over auto-resets (via reset_from)."""

    def reset_from(self, key, state, params):
        obs, fresh = self.reset_env(key, params)
        return obs, fresh.replace(total=state.total)


def test_auto_resets_pass_the_finished_state_to_reset_from():
    env = CarryOverEnv()
    params = env.default_params.replace(horizon=2)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    for t in range(5):
        obs, state, *_ = env.step(jax.random.PRNGKey(t), state, 1, params)
    assert int(state.t) == 1 and float(state.total) == 5.0  # 2 episodes ended, total carried
    vec = VecEnv(env, 2)
    batch = vec.batch_params(params).replace(horizon=jnp.array([2, 3]))
    obs, state = vec.reset(jax.random.PRNGKey(0), batch)
    for t in range(5):
        obs, state, *_ = jax.jit(vec.step)(jax.random.PRNGKey(t), state, jnp.ones(2, int), batch)
    np.testing.assert_array_equal(np.asarray(state.total), [5.0, 5.0])
    np.testing.assert_array_equal(np.asarray(state.t), [1, 2])
    # the default reset_from is a plain reset: the total restarts at every episode
    obs, state = CounterEnv().reset(jax.random.PRNGKey(0), params)
    for t in range(5):
        obs, state, *_ = CounterEnv().step(jax.random.PRNGKey(t), state, 1, params)
    assert float(state.total) == 1.0


def test_registry_make_and_errors():
    register("counter-test-v0", "probe_envs:CounterEnv")
    assert "counter-test-v0" in registered_envs()
    assert isinstance(make("counter-test-v0"), CounterEnv)
    with pytest.raises(ValueError, match="env_id"):
        make("nope-v0")
    with pytest.raises(ValueError, match="entry_point"):
        register("x", "no_colon")


def test_vecenv_checks_actions_at_trace_time():
    vec = VecEnv(CounterEnv(), 2)  # single agent, Discrete(3): action [2] int
    params = vec.batch_params()
    obs, state = vec.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(vec.step)
    with pytest.raises(ValueError, match="action has shape"):
        step(jax.random.PRNGKey(1), state, jnp.zeros((3,), jnp.int32), params)
    with pytest.raises(ValueError, match="action has shape"):
        step(jax.random.PRNGKey(1), state, jnp.zeros((2, 1), jnp.int32), params)
    with pytest.raises(TypeError, match="action has dtype"):
        step(jax.random.PRNGKey(1), state, jnp.zeros((2,), jnp.float32), params)
    out = step(jax.random.PRNGKey(1), state, jnp.zeros((2,), jnp.int32), params)
    assert out[2].shape == (2,)


def test_registry_env_class_and_unregister():
    from dtwin_jax.envs import registry
    from dtwin_jax.envs.edge_retrain import EdgeRetrainEnv

    assert registry.env_class("edge-retrain-v0") is EdgeRetrainEnv
    with pytest.raises(ValueError, match="not registered"):
        registry.env_class("nope-v0")
    registry.register("tmp-v0", "dtwin_jax.envs.edge_retrain:EdgeRetrainEnv")
    assert "tmp-v0" in registry.registered_envs()
    registry.unregister("tmp-v0")
    registry.unregister("tmp-v0")  # absent: no error
    assert "tmp-v0" not in registry.registered_envs()


def test_vecenv_reset_in_batches_matches_and_holds_less():
    env = make("association-v0", num_bs=22, max_users=128)
    one = env.default_params

    def compiled(reset_batch):
        vec = VecEnv(env, 40, reset_batch=reset_batch)
        return jax.jit(lambda k: vec.reset(k, vec.batch_params(one))).lower(
            jax.random.PRNGKey(0)).compile()

    whole, chunked = compiled(None), compiled(8)  # 40 = 5 chunks of 8
    ref, got = whole(jax.random.PRNGKey(5)), chunked(jax.random.PRNGKey(5))
    # the same draws (the shadowing tiles, bit for bit), the same arithmetic up to rounding
    np.testing.assert_array_equal(ref[1].shadow.values, got[1].shadow.values)
    np.testing.assert_array_equal(ref[1].mobility.pos, got[1].mobility.pos)
    np.testing.assert_allclose(ref[1].sinr, got[1].sinr, rtol=1e-5)
    np.testing.assert_allclose(ref[0].features, got[0].features, rtol=1e-5, atol=1e-6)
    temp = [c.memory_analysis().temp_size_in_bytes for c in (whole, chunked)]
    assert temp[1] < temp[0] / 3, temp
    with pytest.raises(ValueError, match="reset_batch"):
        VecEnv(env, 4, reset_batch=0)
