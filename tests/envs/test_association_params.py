"""association-v0 boundary checks: params validation, memory estimate, the illegal-action
rule and checked mode (one test per bad input of issue 8)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from dtwin_jax.envs.association import MAX_STATE_BYTES, AssociationEnv
from dtwin_jax.envs.wrappers import CheckedEnv, checked

U = 8


@pytest.fixture(scope="module")
def env():
    return AssociationEnv(num_bs=4, num_macro=1, max_users=U, num_candidates=3,
                          mobility="waypoint", area_m=200.0, shadow_cell_m=20.0)


@pytest.mark.parametrize("field", ["num_users", "episode_length"])
def test_integer_fields_reject_non_integers(env, field):
    with pytest.raises(TypeError, match=f"{field} must hold integers, got 2.7"):
        env.make_params(**{field: 2.7})
    assert int(getattr(env.make_params(**{field: 3.0}), field)) == 3  # whole floats are fine
    with pytest.raises(TypeError, match=field):  # and the rule holds for replace() too
        env.check_params(env.default_params.replace(**{field: jnp.float32(3.0)}))


def test_nan_is_refused_with_a_clear_message(env):
    with pytest.raises(ValueError, match=r"num_users contains NaN or inf \(got nan\).*finite"):
        env.make_params(num_users=np.nan)
    with pytest.raises(ValueError, match="fc_ghz contains NaN"):
        env.make_params(fc_ghz=np.inf)


@pytest.mark.parametrize("field", ["w_own", "w_net", "w_handover"])
def test_reward_weights_bounded(env, field):
    with pytest.raises(ValueError, match=rf"{field}=\S+e\+3\d is out of range.*\[0.0, 1000.0\]"):
        env.make_params(**{field: 1e38})
    with pytest.raises(ValueError, match=field):
        env.make_params(**{field: -1.0})
    env.make_params(**{field: 1e3})


def test_num_users_in_one_to_max_users(env):
    for bad in (0, U + 1):
        match = rf"num_users={bad} is out of range; allowed \[1, {U}\]"
        with pytest.raises(ValueError, match=match):
            env.make_params(num_users=bad)


def test_bs_positions_inside_the_area(env):
    xy = np.asarray(env.default_params.bs_xy).copy()
    xy[2] = [5e4, 100.0]
    with pytest.raises(ValueError, match="bs_xy has a BS outside the mobility area"):
        env.make_params(bs_xy=xy)
    xy[2] = [210.0, -10.0]  # within the documented margin (10% of the 200 m side)
    env.make_params(bs_xy=xy)


def test_area_bounded_and_memory_estimated_before_allocating():
    with pytest.raises(ValueError, match=r"area_m=1000000.0 is out of range"):
        AssociationEnv(area_m=1e6)
    with pytest.raises(ValueError, match=r"need about \d+\.\d MiB of state per twin; allowed up"):
        AssociationEnv(shadow_tile_cells=4096)


def test_state_bytes_matches_the_state(env):
    shapes = jax.eval_shape(env.reset_env, jax.random.key(0), env.default_params)[1]
    leaves = jax.tree.leaves(shapes.replace(mobility=None))
    actual = sum(np.prod(x.shape) * x.dtype.itemsize for x in leaves)
    assert abs(env.state_bytes() - actual) <= 16  # origin, cell size
    assert env.state_bytes() < MAX_STATE_BYTES


def test_mobility_overrides_apply_to_the_env_defaults(env):
    params = env.make_params(mobility={"speed_max": 3.0})
    np.testing.assert_array_equal(params.mobility.area_max, [200.0, 200.0])
    assert float(params.mobility.speed_max) == 3.0
    with pytest.raises(ValueError, match="RandomWaypoint has no parameter 'warp'"):
        env.make_params(mobility={"warp": 9})


def test_illegal_actions_become_the_first_legal_candidate(env):
    params = env.make_params(num_users=6, decision_prob=1.0)  # every candidate legal
    _, state = env.reset(jax.random.key(0), params)
    cand = np.asarray(state.candidates)
    for bad in (7, -1, 3):
        got = np.asarray(env.chosen_bs(state, jnp.full(U, bad, jnp.int32)))
        np.testing.assert_array_equal(got, cand[:, 0])
    np.testing.assert_array_equal(np.asarray(env.chosen_bs(state, jnp.full(U, 2, jnp.int32))),
                                  cand[:, 2])


def test_checked_mode_raises_on_masked_actions_and_bad_params(env):
    params = env.make_params(num_users=6, decision_prob=0.0)  # users may only stay
    cenv = CheckedEnv(env)
    obs, state = checked(cenv.reset)(jax.random.key(0), params)
    stay = jnp.argmax(obs.action_mask, -1).astype(jnp.int32)
    step = checked(cenv.step)
    step(jax.random.key(1), state, stay, params)
    with pytest.raises(checkify.JaxRuntimeError, match="action of agent"):
        step(jax.random.key(1), state, (stay + 1) % 3, params)
    with pytest.raises(checkify.JaxRuntimeError, match="w_own has entry"):
        step(jax.random.key(1), state, stay, params.replace(w_own=jnp.float32(1e38)))
