"""The params API every mobility model shares (dtwin_jax._params) and ``mobility.make``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from dtwin_jax import mobility
from dtwin_jax._params import TRACED
from dtwin_jax.mobility import MODELS, Playback, RandomWaypoint, StreetVehicles


@pytest.mark.parametrize("name", sorted(MODELS))
def test_make_builds_every_model_with_valid_property_defaults(name):
    kwargs = {"num_samples": 5} if name == "playback" else {}
    model = mobility.make(name, 3, **kwargs)
    assert isinstance(model, MODELS[name]) and model.num_users == 3
    params = model.default_params  # a property, built without validation
    model.check_params(params)
    state = jax.jit(lambda k: model.init(k, model.default_params))(jax.random.key(0))
    assert state.pos.shape == (3, 2)


def test_make_rejects_unknown_names_and_arguments():
    with pytest.raises(ValueError, match=r"mobility='teleport' is not supported; allowed"):
        mobility.make("teleport", 3)
    with pytest.raises(TypeError, match="mobility 'waypoint'"):
        mobility.make("waypoint", 3, max_hops=4)
    assert isinstance(mobility.make("street", 2, max_hops=3), StreetVehicles)
    assert isinstance(mobility.make("playback", 2, num_samples=4, loop=False), Playback)


def test_make_params_refuses_nan():
    with pytest.raises(ValueError, match="speed_max contains NaN or inf.*must be finite"):
        RandomWaypoint(2).make_params(speed_max=np.nan)


def test_traced_rules_raise_at_run_time_under_jit():
    model = RandomWaypoint(2)

    def check(params):
        model.check_params(params, TRACED)
        return params.dt

    run = jax.jit(checkify.checkify(check))
    err, _ = run(model.make_params(speed_max=3.0))
    err.throw()  # valid params: no error
    bad = model.default_params.replace(speed_min=jnp.float32(5.0), speed_max=jnp.float32(2.0))
    err, _ = run(bad)
    with pytest.raises(checkify.JaxRuntimeError, match="speed_max=2.0 must be >= speed_min=5.0"):
        err.throw()
    err, _ = run(model.default_params.replace(dt=jnp.float32(np.nan)))
    with pytest.raises(checkify.JaxRuntimeError, match="dt has entry nan"):
        err.throw()
