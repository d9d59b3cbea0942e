"""GeneratedMobility: a bank of sampled trajectories, refreshed R at a time, replayed by
Playback; jitted, deterministic, inside the area."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.mobility.generated import GeneratedMobility
from dtwin_jax.twins.map2traj.diffusion import DiffusionConfig
from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT
from dtwin_jax.twins.map2traj.unet import UNetConfig

TINY = DiffusionConfig(
    unet=UNetConfig(
        length=8, channels=(8, 8), blocks=1, emb_dim=8, cond_dim=8, map_channels=(4,),
        blur_sigmas=(1.0,), groups=4,
    ),
    timesteps=50,
)
MAP = (8, 8, 2)
L = 8


def _model_and_params(num_users=4, **static):
    """A tiny model and params whose bank holds random points in the area (no sampling)."""
    model = GeneratedMobility(num_users, TINY, MAP, num_steps=2, **static)
    shapes = model.default_params.net
    rng = np.random.default_rng(0)
    net = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), s.dtype), shapes)
    lo, hi = np.array([100.0, -50.0]), np.array([400.0, 250.0])
    params = model.make_params(
        net=net, raster=rng.uniform(size=MAP), area_min=lo, area_max=hi, sample_dt=2.0, dt=1.0,
        bank=lo + (hi - lo) * rng.uniform(size=(model.bank_size, L, 2)),
    )  # fmt: skip
    return model, params


@pytest.fixture(scope="module")
def ring():
    """U = 4 users, a bank of P = 7, R = 3 fresh samples per reset, looping playback."""
    model, params = _model_and_params(bank_size=7, refresh=3)
    fns = {name: jax.jit(chex.assert_max_traces(getattr(model, name), n=1))
           for name in ("init", "reinit", "step")}
    return model, params, fns


def _changed_rows(a, b):
    return np.flatnonzero(np.any(np.asarray(a) != np.asarray(b), axis=(1, 2)))


def _source(traj_u, bank, loop):
    """(bank row, shift, reversed) such that the user's trajectory is that row augmented."""
    bank = np.asarray(bank)
    for row in range(bank.shape[0]):
        for rev in (False, True):
            for shift in range(L) if loop else (0,):
                idx = (np.arange(L) + shift) % L
                idx = L - 1 - idx if rev else idx
                if np.array_equal(bank[row][idx], traj_u):
                    return row, shift, rev
    return None


def test_default_fast_mode_sizes():
    model = GeneratedMobility(64, TINY, MAP)
    assert (model.bank_size, model.refresh, model.augment, model.all_fresh) == (128, 8, True, False)
    assert GeneratedMobility(5, TINY, MAP).refresh == 1


def test_init_and_step_are_jitted_once_finite_and_inside_the_area(ring):
    model, params, fns = ring
    s1 = fns["init"](jax.random.key(0), params)
    s2 = fns["init"](jax.random.key(1), params)  # new key: no retrace, new draw and samples
    assert s1.pos.shape == (4, 2) and s1.traj.shape == (4, L, 2) and s1.bank.shape == (7, L, 2)
    assert not np.allclose(s1.traj, s2.traj)
    np.testing.assert_allclose(s1.pos, s1.traj[:, 0], atol=1e-4)
    lo, hi = np.asarray(params.area_min), np.asarray(params.area_max)
    state = s1
    for k in range(20):  # past the end of the 8-point trajectories: loops back
        state = fns["step"](jax.random.key(k), state, params)
        chex.assert_tree_all_finite(state.pos)
        assert np.all(state.pos >= lo) and np.all(state.pos <= hi)
        if k == 1:  # t = 2 s = sample_dt: exactly the second point
            np.testing.assert_allclose(state.pos, s1.traj[:, 1], atol=1e-3)
    for name in ("traj", "bank", "ptr"):  # step never resamples
        np.testing.assert_array_equal(getattr(state, name), getattr(s1, name))


def test_reset_refreshes_exactly_refresh_bank_entries_as_a_ring(ring):
    model, params, fns = ring
    state = fns["init"](jax.random.key(0), params)
    ptr0 = (int(state.ptr) - 3) % 7
    np.testing.assert_array_equal(_changed_rows(state.bank, params.bank),
                                  np.sort((ptr0 + np.arange(3)) % 7))
    for k in range(1, 4):  # reinit continues the ring from the previous episode's bank
        new = fns["reinit"](jax.random.key(k), state, params)
        rows = (int(state.ptr) + np.arange(3)) % 7
        np.testing.assert_array_equal(_changed_rows(new.bank, state.bank), np.sort(rows))
        assert int(new.ptr) == (int(state.ptr) + 3) % 7
        # the fresh samples go to users 0..R-1 (in ring order); the others get other bank
        # rows, each at most once, reversed and/or cyclically shifted
        sources = [_source(np.asarray(new.traj[u]), new.bank, loop=True) for u in range(4)]
        assert all(s is not None for s in sources)
        assert [s[0] for s in sources[:3]] == rows.tolist()
        assert len({s[0] for s in sources}) == 4
        chex.assert_tree_all_finite(new)
        state = new


def test_init_vmaps_over_twins_and_is_deterministic_per_key(ring):
    model, params, fns = ring
    keys = jax.random.split(jax.random.key(4), 2)
    batch = jax.jit(jax.vmap(model.init, in_axes=(0, None)))(keys, params)
    assert batch.traj.shape == (2, 4, L, 2) and batch.bank.shape == (2, 7, L, 2)
    again = fns["init"](keys[1], params)
    np.testing.assert_allclose(batch.traj[1], again.traj, atol=1e-4)
    np.testing.assert_array_equal(batch.ptr[1], again.ptr)
    chex.assert_trees_all_equal(again, fns["init"](keys[1], params))


def test_fill_bank_samples_every_entry_inside_the_area(ring):
    model, params, _ = ring
    filled = jax.jit(model.fill_bank)(jax.random.key(3), params)
    bank = np.asarray(filled.bank)
    assert len(_changed_rows(bank, params.bank)) == 7
    assert len(np.unique(bank.reshape(7, -1), axis=0)) == 7
    assert np.all(bank >= np.asarray(params.area_min)) and np.all(bank <= params.area_max)


def test_all_fresh_without_loop_users_get_new_samples_or_their_reverse():
    model, params = _model_and_params(num_users=3, bank_size=3, refresh=3, loop=False)
    assert model.all_fresh
    init = jax.jit(model.init)
    states = [init(jax.random.key(k), params) for k in range(4)]
    reversed_ = set()
    for s in states:
        assert len(_changed_rows(s.bank, params.bank)) == 3
        for u in range(3):
            src = _source(np.asarray(s.traj[u]), s.bank, loop=False)
            assert src is not None and src[1] == 0  # no cyclic shift without loop
            reversed_.add(src[2])
    assert reversed_ == {False, True}  # both directions occur
    assert len(_changed_rows(states[0].traj, states[1].traj)) == 3


def test_params_and_static_validation_names_the_field():
    model, params = _model_and_params(num_users=5)
    with pytest.raises(ValueError, match="raster"):
        model.make_params(net=params.net, raster=np.ones((4, 4, 2)))
    with pytest.raises(ValueError, match="eta"):
        model.make_params(net=params.net, eta=2.0)
    with pytest.raises(ValueError, match="road_guidance"):
        model.make_params(net=params.net, road_guidance=1.5)
    with pytest.raises(ValueError, match=r"bank has shape \(3, 8, 2\); expected \(10, 8, 2\)"):
        model.check_params(params.replace(bank=jnp.zeros((3, L, 2))))
    bad = jax.tree.map(lambda x: x, params.net)
    bad["params"]["null_cond"] = jnp.zeros(3)
    with pytest.raises(ValueError, match=r"null_cond.*\(3,\)"):
        model.check_params(params.replace(net=bad))
    with pytest.raises(ValueError, match="num_users"):
        GeneratedMobility(0, TINY, MAP)
    with pytest.raises(ValueError, match=r"bank_size=3 is out of range; allowed \[5, inf\)"):
        GeneratedMobility(5, TINY, MAP, bank_size=3)
    with pytest.raises(ValueError, match=r"refresh=11 is out of range; allowed \[1, 10\]"):
        GeneratedMobility(5, TINY, MAP, refresh=11)
    with pytest.raises(ValueError, match="refresh=0"):
        GeneratedMobility(5, TINY, MAP, refresh=0)
    with pytest.raises(ValueError, match="augment"):
        GeneratedMobility(5, TINY, MAP, augment="yes")


def test_from_shipped_checkpoint_all_fresh_samples_inside_bounds(tmp_path):
    raster = np.zeros((64, 64, 2), np.float32)
    raster[30:34, :, 0] = 1.0  # one horizontal road
    bounds = np.array([[0.0, 0.0], [800.0, 800.0]])
    model, params = GeneratedMobility.from_checkpoint(
        SHIPPED_CHECKPOINT, raster, bounds, num_users=2, num_steps=2, bank_size=2, refresh=2,
        augment=False,
    )  # fmt: skip
    assert model.all_fresh  # the old behaviour: every user gets a new sample on every reset
    state = jax.jit(model.init)(jax.random.key(0), params)
    length = model.config.unet.length
    assert state.traj.shape == (2, length, 2) and state.bank.shape == (2, length, 2)
    ring_order = (int(state.ptr) + np.arange(2)) % 2  # after a full refresh ptr is back
    np.testing.assert_array_equal(state.traj, np.asarray(state.bank)[ring_order])
    assert len(_changed_rows(state.bank, params.bank)) == 2
    assert np.all(np.isfinite(state.traj))
    assert np.all(state.traj >= 0.0) and np.all(state.traj <= 800.0)
    with pytest.raises(FileNotFoundError, match="nothing.msgpack"):
        GeneratedMobility.from_checkpoint(tmp_path / "nothing.msgpack", raster, bounds, 4)
