"""Map2Traj diffusion: schedule, forward process, DDIM sampler, guidance, training, checkpoint."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.twins.map2traj import diffusion as D
from dtwin_jax.twins.map2traj.train import (
    SHIPPED_CHECKPOINT,
    TrainConfig,
    augment,
    load_trained,
    train,
)
from dtwin_jax.twins.map2traj.unet import TrajUNet, UNetConfig, map_features, sample_local

TINY = D.DiffusionConfig(
    unet=UNetConfig(
        length=8, channels=(8, 8), blocks=1, emb_dim=8, cond_dim=8, map_channels=(4,),
        blur_sigmas=(1.0,), groups=4,
    ),
    timesteps=50,
)
MAP = (8, 8, 2)


@functools.cache
def _params(seed=0):
    """Tiny network with random N(0, 0.3^2) weights (drawn with NumPy: no init compile)."""
    shapes = jax.eval_shape(lambda k: D.init_params(TINY, k, MAP), jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), s.dtype), shapes)


def _raster(seed):
    return jax.random.uniform(jax.random.key(seed), MAP)


def test_linear_schedule_closed_forms():
    s = D.linear_schedule(500, 1e-4, 0.05)
    betas = np.linspace(1e-4, 0.05, 500)
    np.testing.assert_allclose(s.betas, betas, rtol=1e-6)
    np.testing.assert_allclose(s.alphas, 1 - betas, rtol=1e-6)
    np.testing.assert_allclose(s.alpha_bars, np.cumprod(1 - betas), rtol=2e-4, atol=1e-9)
    assert np.all(np.diff(np.asarray(s.alpha_bars)) < 0)
    assert float(s.alpha_bars[-1]) < 1e-5  # x_T is (almost) pure noise


def test_q_sample_matches_gaussian_moments():
    s = D.linear_schedule(500, 1e-4, 0.05)
    n = 40_000
    x0 = jnp.array([[0.7, -0.4]])
    for t in (0, 50, 200, 499):
        noise = jax.random.normal(jax.random.key(t), (n, 1, 2))
        xt = D.q_sample(s, jnp.broadcast_to(x0, (n, 1, 2)), jnp.full((n,), t), noise)
        ab = float(s.alpha_bars[t])
        mean, var = np.asarray(xt.mean(0)), np.asarray(xt.var(0))
        tol = 5 * np.sqrt((1 - ab) / n)  # 5 standard errors of the mean
        np.testing.assert_allclose(mean, np.sqrt(ab) * np.asarray(x0), atol=tol)
        np.testing.assert_allclose(var, np.full_like(var, 1 - ab), rtol=0.04, atol=1e-7)


def test_sample_local_is_exact_at_pixel_centres_and_bilinear_between():
    fmap = jnp.asarray(np.random.default_rng(0).normal(size=(6, 5, 3)), jnp.float32)
    lookup = jax.jit(sample_local)
    i, j = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    xy = np.stack([(j + 0.5) / 5 * 2 - 1, (i + 0.5) / 6 * 2 - 1], -1).reshape(-1, 2)
    np.testing.assert_allclose(lookup(fmap, jnp.asarray(xy)), fmap.reshape(-1, 3), atol=1e-5)
    mid = jnp.array([[(1.0 + 0.5 + 0.5) / 5 * 2 - 1, (2.0 + 0.5) / 6 * 2 - 1]])  # between cols 1, 2
    want = 0.5 * (fmap[2, 1] + fmap[2, 2])
    np.testing.assert_allclose(lookup(fmap, mid)[0], want, atol=1e-5)


def test_augment_keeps_trajectory_on_the_same_map_features():
    """Any joint symmetry leaves the raster value under each trajectory point unchanged."""
    raster = jax.random.uniform(jax.random.key(1), (8, 8, 2))
    traj = jax.random.uniform(jax.random.key(2), (8, 2), minval=-1, maxval=1)
    before = sample_local(raster, traj)
    keys = jax.random.split(jax.random.key(3), 32)
    r2, t2 = jax.jit(jax.vmap(augment, in_axes=(0, None, None)))(keys, raster, traj)
    after = jax.jit(jax.vmap(sample_local))(r2, t2)
    flips = np.asarray(t2[:, 0, 0] != traj[0, 0]) | np.asarray(t2[:, 0, 1] != traj[0, 1])
    assert flips.any()  # the symmetries really were applied
    for k in range(32):  # time reversal permutes the points, hence the sort
        np.testing.assert_allclose(np.sort(after[k], 0), np.sort(before, 0), atol=1e-5)


def test_ddim_eta0_is_deterministic_and_eta_noise_matters_otherwise():
    params = _params()
    cond = D.encode_map(TINY, params, _raster(0)[None])
    x_T = jax.random.normal(jax.random.key(5), (6, 8, 2))
    run = jax.jit(  # arrays as arguments, not closed-over constants (slow constant folding)
        lambda p, c, x, k, eta: D.ddim_sample(TINY, p, c, x, k, num_steps=10, eta=eta)
    )
    a = run(params, cond, x_T, jax.random.key(1), 0.0)
    b = run(params, cond, x_T, jax.random.key(2), 0.0)
    c = run(params, cond, x_T, jax.random.key(2), 1.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (6, 8, 2) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    assert not np.allclose(a, c, atol=1e-3)


def test_guidance_combines_conditional_and_unconditional_estimates():
    params = _params()
    raster = _raster(0)[None]
    cond = D.encode_map(TINY, params, raster)
    x = jax.random.normal(jax.random.key(7), (5, 8, 2))
    t = jnp.array([0, 3, 10, 30, 49])

    query = D.query_points(D.schedule_of(TINY), x, t)
    den = jax.jit(
        lambda p, c, use: TINY.model.apply(
            p, x, t, c, jnp.full((5,), use), query, method=TrajUNet.denoise
        )
    )
    guided = jax.jit(lambda p, c, w: D.guided_eps(TINY, p, x, t, c, w, query))
    e_c, e_u = den(params, cond, True), den(params, cond, False)
    assert not np.allclose(e_c, e_u, atol=1e-3)  # the map does change the estimate
    for w in (0.0, 1.0, 2.5):
        got = guided(params, cond, w)
        np.testing.assert_allclose(got, e_u + w * (e_c - e_u), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(guided(params, cond, 0.0), e_u, atol=1e-6)


def test_guidance_zero_sampling_ignores_the_map_and_vmaps_over_maps():
    params = _params()
    sample = jax.jit(
        jax.vmap(
            lambda p, r, k, w: D.sample_trajectories(
                p, r, k, 4, num_steps=5, guidance=w, config=TINY, road_guidance=0.0
            ),
            in_axes=(None, 0, None, None),
        )
    )
    rasters = jnp.stack([_raster(1), _raster(2)])
    key = jax.random.key(9)
    uncond = sample(params, rasters, key, 0.0)
    cond = sample(params, rasters, key, 1.0)
    assert uncond.shape == (2, 4, 8, 2) and np.all(np.isfinite(cond))
    np.testing.assert_allclose(uncond[0], uncond[1], atol=1e-6)  # w = 0: map-independent
    assert not np.allclose(cond[0], cond[1], atol=1e-3)


def test_tiny_model_overfits_one_trajectory():
    traj = np.linspace([-0.8, -0.5], [0.6, 0.7], 8, dtype=np.float32)
    data = {"raster": np.asarray(_raster(3))[None], "traj": traj[None, None]}
    config = TrainConfig(
        model=TINY, num_steps=200, batch_size=16, learning_rate=3e-3, warmup_steps=10,
        p_uncond=0.0, augment=False, ema_decay=0.9,
    )
    _, metrics = train(config, data, jax.random.key(0), progress=False)
    loss = metrics["loss"]
    assert loss.shape == (200,) and np.all(np.isfinite(loss))
    assert loss[-50:].mean() < 0.35 * loss[:20].mean()


def test_train_config_and_dataset_validation():
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(num_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="length=10"):
        UNetConfig(length=10, channels=(8, 8, 8))
    with pytest.raises(ValueError, match="timesteps"):
        D.DiffusionConfig(timesteps=1)
    config = TrainConfig(model=TINY, num_steps=2, warmup_steps=0)
    bad = {"raster": np.zeros((1, 8, 8, 2)), "traj": np.zeros((1, 3, 5, 2))}
    with pytest.raises(ValueError, match=r"dataset\['traj'\]"):
        train(config, bad, jax.random.key(0), progress=False)


def test_config_dict_round_trip():
    config = TrainConfig(model=TINY, num_steps=7, warmup_steps=1)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert dataclasses.replace(config, num_steps=7) == config


def test_shipped_checkpoint_loads_with_its_config():
    """(Sampling from it is tested in tests/mobility/test_generated.py.)"""
    config, params, meta = load_trained()
    assert meta["command"] == (
        "python -m dtwin_jax.twins.map2traj.train --out dtwin_jax/data/map2traj_small.msgpack"
    )
    assert TrainConfig.from_dict(meta["config"]).model == config
    assert SHIPPED_CHECKPOINT.stat().st_size < 8 * 2**20
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


def test_missing_or_corrupt_model_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.msgpack"):
        load_trained(tmp_path / "missing.msgpack")
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(SHIPPED_CHECKPOINT.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_trained(bad)


def test_augment_moves_precomputed_map_features_like_the_raster():
    """Transformed features equal the features of the transformed raster (any symmetry)."""
    sigmas = (1.0, 3.0)
    raster = jax.random.uniform(jax.random.key(4), (12, 12, 2))
    local = map_features(raster[None], sigmas)[0]
    traj = jnp.zeros((8, 2))
    keys = jax.random.split(jax.random.key(5), 16)
    r2, _, f2 = jax.jit(jax.vmap(augment, in_axes=(0, None, None, None)))(
        keys, raster, traj, local
    )
    want = jax.jit(lambda r: map_features(r, sigmas))(r2)
    assert len({np.asarray(r).tobytes() for r in r2}) > 4  # several symmetries were drawn
    np.testing.assert_allclose(f2, want, atol=1e-4)


def _row_roads(rows, size=32):
    """Raster ``[size, size, 2]`` with roads along the given pixel rows (junction channel 0)."""
    img = np.zeros((size, size, 2), np.float32)
    img[list(rows), :, 0] = 1.0
    return jnp.asarray(img)


def test_road_shift_pulls_nearby_points_onto_the_road_centre_line():
    size, sigmas = 32, (1.5, 4.0)
    local = map_features(_row_roads([10, 11], size)[None], sigmas)[0]
    centre_y = 11.0 / size * 2 - 1  # halfway between the centres of rows 10 and 11
    px = 2.0 / size
    offsets = np.array([-3.0, -1.5, -0.6, 0.0, 0.7, 2.0, 4.0]) * px
    x = jnp.asarray(np.stack([np.linspace(-0.5, 0.5, 7), centre_y + offsets], -1), jnp.float32)
    shift = jax.jit(lambda f, p: D.road_shift(f, p, sigmas))
    first = shift(local, x)
    np.testing.assert_allclose(first[:, 0], 0.0, atol=1e-5)  # only across the road
    assert abs(float(first[3, 1])) < 0.02 * px  # on the centre line: stays
    for _ in range(8):
        x = x + shift(local, x)
    np.testing.assert_allclose(x[:, 1], centre_y, atol=0.15 * px)
    empty = map_features(jnp.zeros((1, size, size, 2)), sigmas)[0]
    np.testing.assert_array_equal(shift(empty, x), 0.0)  # no road: no pull, no NaN


def test_road_guidance_puts_samples_on_roads():
    """Same noise, same network: road guidance 1 brings the samples closer to the roads."""
    params = _params()
    raster = _row_roads(range(0, 8, 2), 8)  # MAP-sized raster with roads on rows 0, 2, 4, 6
    sample = jax.jit(lambda p, r, k, g: D.sample_trajectories(
        p, r, k, 16, num_steps=10, guidance=1.0, config=TINY, road_guidance=g))  # fmt: skip
    key = jax.random.key(11)

    def off_road(y):  # distance (pixels) from each point to the nearest road row's centre
        pix = (np.asarray(y)[..., 1] + 1) / 2 * 8 - 0.5
        return np.abs(pix - np.clip(np.round(pix / 2) * 2, 0, 6))

    plain, pulled = sample(params, raster, key, 0.0), sample(params, raster, key, 1.0)
    assert np.all(np.isfinite(pulled)) and np.all(np.abs(pulled) <= 1.0)
    # (a random-weight network pushes many points to the border, so the gain is partial)
    assert off_road(pulled).mean() < 0.85 * off_road(plain).mean()
