"""Denoising diffusion over trajectories: schedule, forward process, DDPM loss, DDIM sampler.

Trajectories are ``[L, 2]`` arrays of coordinates normalised to [-1, 1] (see ``data.normalize``).
Schedule: linear betas from ``beta_start`` to ``beta_end`` over ``timesteps`` steps. Default
1e-4 .. 0.05 over 500 steps, as in DiffTraj: the final signal level sqrt(abar_T) ~ 2e-3, so
x_T is pure noise, and 500 steps is short enough that the uniform-t training loss spends most
of its samples at informative noise levels. Sampling uses DDIM with fewer steps (default 50).

Classifier-free guidance: eps = eps_uncond + w (eps_cond - eps_uncond); w = 0 is the
unconditional model, w = 1 the conditional one, w > 1 pushes harder toward the map.

Road guidance (``road_guidance`` = lambda in [0, 1]): at every DDIM step the predicted x_0 is
moved by lambda times a mean-shift step towards the streets of the raster (``road_shift``,
computed from the same blurred-raster features the network reads), and the step continues
from the moved x_0. The network alone leaves many points 10-30 m beside a street (it learns
where trips go better than the exact street geometry at this raster resolution); the guidance
snaps them onto it. It uses only the raster, like the network.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax._checks import check_float, check_int
from dtwin_jax.twins.map2traj.unet import TrajUNet, UNetConfig, sample_local


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Static description of a Map2Traj model: network architecture + noise schedule."""

    unet: UNetConfig = UNetConfig()
    timesteps: int = 500
    beta_start: float = 1e-4
    beta_end: float = 0.05

    def __post_init__(self):
        check_int("timesteps", self.timesteps, 2, 100_000)
        check_float("beta_start", self.beta_start, 0.0, 1.0, lo_open=True, hi_open=True)
        check_float("beta_end", self.beta_end, self.beta_start, 1.0, hi_open=True)

    @property
    def model(self) -> TrajUNet:
        """The (unbound) denoising network :class:`TrajUNet` of ``unet``."""
        return TrajUNet(self.unet)

    def to_dict(self) -> dict:
        """JSON-ready fields (``unet`` as :meth:`UNetConfig.to_dict`)."""
        d = {k: v for k, v in vars(self).items() if k != "unet"}
        return {**d, "unet": self.unet.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> DiffusionConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "unet": UNetConfig.from_dict(d["unet"])})


@struct.dataclass
class Schedule:
    """Noise schedule arrays, each ``[T]`` float32: betas, alphas = 1 - betas, alpha_bars."""

    betas: jax.Array
    alphas: jax.Array
    alpha_bars: jax.Array


def linear_schedule(timesteps: int, beta_start: float, beta_end: float) -> Schedule:
    """Linear betas; ``alpha_bars[t] = prod_{s<=t} (1 - beta_s)``."""
    betas = jnp.linspace(beta_start, beta_end, timesteps, dtype=jnp.float32)
    alphas = 1.0 - betas
    # Cumulative product in log space: exact to float32 rounding for any length.
    alpha_bars = jnp.exp(jnp.cumsum(jnp.log(alphas)))
    return Schedule(betas=betas, alphas=alphas, alpha_bars=alpha_bars)


def schedule_of(config: DiffusionConfig) -> Schedule:
    """``config``'s linear noise schedule: arrays ``[timesteps]`` float32."""
    return linear_schedule(config.timesteps, config.beta_start, config.beta_end)


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Forward process: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``.

    ``x0, noise [B, ...]``, ``t [B]`` int steps in [0, T).
    """
    abar = schedule.alpha_bars[t].reshape((-1,) + (1,) * (x0.ndim - 1))
    return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise


def query_points(schedule: Schedule, x: jax.Array, t: jax.Array) -> jax.Array:
    """Where the denoiser reads the map for ``x_t [B, L, 2]``: ``x_t / sqrt(abar_t)``, clipped.

    ``x_t`` is ``sqrt(abar_t) x_0`` plus noise, so rescaling puts the query near the true
    position at every noise level (at high noise it is clipped to the map's border).
    """
    abar = schedule.alpha_bars[t].reshape((-1, 1, 1))
    return jnp.clip(x / jnp.sqrt(abar), -1.2, 1.2)


def predict_x0(schedule: Schedule, x: jax.Array, t: jax.Array, eps: jax.Array) -> jax.Array:
    """x_0 implied by a noise estimate: ``(x_t - sqrt(1 - abar) eps) / sqrt(abar)``, in [-1, 1]."""
    abar = schedule.alpha_bars[t].reshape((-1, 1, 1))
    return jnp.clip((x - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar), -1.0, 1.0)


@functools.partial(jax.jit, static_argnums=(0, 2))
def init_params(config: DiffusionConfig, key: jax.Array, map_shape: tuple[int, int, int]):
    """Random network variables for rasters of shape ``map_shape = (H, W, C)``.

    Jitted (op-by-op initialisation of the convolutions is many times slower).
    """
    length = config.unet.length
    return config.model.init(
        key,
        jnp.zeros((1, length, 2), jnp.float32),
        jnp.zeros((1,), jnp.int32),
        jnp.zeros((1, *map_shape), jnp.float32),
        jnp.ones((1,), bool),
        jnp.zeros((1, length, 2), jnp.float32),
    )


def ddpm_loss(
    config: DiffusionConfig,
    params,
    x0: jax.Array,
    raster: jax.Array,
    key: jax.Array,
    p_uncond: float | jax.Array = 0.1,
    local: jax.Array | None = None,
) -> jax.Array:
    """Mean squared error of the predicted noise (the simple DDPM loss), a scalar.

    ``x0 [B, L, 2]`` normalised trajectories, ``raster [B, H, W, C]`` their maps; each
    sample's condition is dropped with probability ``p_uncond`` (classifier-free guidance).
    ``local [B, H, W, F]``: the rasters' ``unet.map_features`` if already computed.
    Self-conditioned map queries: for half the samples the map is read at the x_0 estimate
    of a first, gradient-free pass (as the sampler reads it at the previous step's x_0
    estimate); for the others at ``query_points(x_t)``.
    """
    schedule = schedule_of(config)
    k_t, k_noise, k_drop, k_self = jax.random.split(key, 4)
    batch = x0.shape[0]
    t = jax.random.randint(k_t, (batch,), 0, config.timesteps)
    noise = jax.random.normal(k_noise, x0.shape, x0.dtype)
    use_cond = jax.random.uniform(k_drop, (batch,)) >= p_uncond
    xt = q_sample(schedule, x0, t, noise)
    if local is None:
        cond = config.model.apply(params, raster, method=TrajUNet.encode_map)
    else:
        cond = {"vec": config.model.apply(params, raster, method=TrajUNet.encode_vec),
                "local": local}  # fmt: skip
    query = query_points(schedule, xt, t)
    eps0 = config.model.apply(params, xt, t, cond, use_cond, query, method=TrajUNet.denoise)
    x0_hat = jax.lax.stop_gradient(predict_x0(schedule, xt, t, eps0))
    self_cond = jax.random.bernoulli(k_self, 0.5, (batch, 1, 1))
    query = jnp.where(self_cond, x0_hat, query)
    eps = config.model.apply(params, xt, t, cond, use_cond, query, method=TrajUNet.denoise)
    return jnp.mean(jnp.square(eps - noise))


def encode_map(config: DiffusionConfig, params, raster: jax.Array) -> dict:
    """Condition of one or more maps: ``raster [B, H, W, C]`` -> dict of ``[B, ...]`` arrays."""
    return config.model.apply(params, raster, method=TrajUNet.encode_map)


def guided_eps(
    config: DiffusionConfig,
    params,
    x: jax.Array,
    t: jax.Array,
    cond: dict,
    guidance,
    query: jax.Array,
) -> jax.Array:
    """Classifier-free guided noise estimate ``[B, L, 2]`` (one network call on 2B samples).

    ``query [B, L, 2]``: where each point reads the map (see ``TrajUNet.denoise``).
    """
    batch = x.shape[0]
    cond2 = jax.tree_util.tree_map(
        lambda c: c if c.shape[0] == 1 else jnp.concatenate([c, c]), cond
    )
    use = jnp.concatenate([jnp.ones((batch,), bool), jnp.zeros((batch,), bool)])
    x2, t2, q2 = jnp.concatenate([x, x]), jnp.concatenate([t, t]), jnp.concatenate([query, query])
    eps = config.model.apply(params, x2, t2, cond2, use, q2, method=TrajUNet.denoise)
    eps_c, eps_u = eps[:batch], eps[batch:]
    return eps_u + guidance * (eps_c - eps_u)


def road_shift(local: jax.Array, x: jax.Array, sigmas: tuple[float, ...]) -> jax.Array:
    """Mean-shift step ``[N, 2]`` (normalised units) moving points ``x [N, 2]`` onto roads.

    ``local [H, W, F]``: :func:`unet.map_features` of one raster. For a road image blurred by
    a Gaussian of ``sigma`` pixels, ``sigma^2 grad B / B`` is the displacement from a point to
    the mean of the road pixels around it (the mean-shift vector), which for a point within
    about ``sigma`` of one street lies on that street's centre line. The finest blur is used
    where it sees a road; points farther away fall back to the next coarser blur. Each step
    is capped at two blur widths.
    """
    width = local.shape[1]
    feats = sample_local(local, x)
    shift = jnp.zeros_like(x)
    weight_left = jnp.ones(x.shape[:1] + (1,), x.dtype)
    for k, sigma in enumerate(sigmas[:2]):
        base = 2 + 6 * k  # road channel of blur k: value, d/dcol * sigma, d/drow * sigma
        blur = feats[:, base : base + 1]
        grad = jnp.concatenate([feats[:, base + 2 : base + 3], feats[:, base + 4 : base + 5]], 1)
        step = sigma * grad / jnp.maximum(blur, 1e-4)  # pixels
        norm = jnp.linalg.norm(step, axis=1, keepdims=True)
        step = step * jnp.minimum(1.0, 2.0 * sigma / jnp.maximum(norm, 1e-9))
        w = weight_left * (blur / (blur + 0.1) if k < min(len(sigmas), 2) - 1 else 1.0)
        shift = shift + w * step
        weight_left = weight_left - w
    return shift * (2.0 / width)


def _road_shift_batch(local: jax.Array, x: jax.Array, sigmas) -> jax.Array:
    """:func:`road_shift` of ``x [B, L, 2]`` on maps ``local [B or 1, H, W, F]``."""
    if local.shape[0] == 1:
        return road_shift(local[0], x.reshape(-1, 2), sigmas).reshape(x.shape)
    return jax.vmap(road_shift, in_axes=(0, 0, None))(local, x, sigmas)


def ddim_timesteps(timesteps: int, num_steps: int) -> jax.Array:
    """Descending step indices ``[num_steps]`` from ``timesteps - 1`` to 0, evenly spaced."""
    return jnp.round(jnp.linspace(timesteps - 1, 0, num_steps)).astype(jnp.int32)


def ddim_sample(
    config: DiffusionConfig,
    params,
    cond: dict,
    x_T: jax.Array,
    key: jax.Array,
    num_steps: int = 50,
    eta: float | jax.Array = 0.0,
    guidance: float | jax.Array = 1.0,
    clip: bool = True,
    road_guidance: float | jax.Array = 0.0,
) -> jax.Array:
    """DDIM sampling as one ``lax.scan`` from noise ``x_T [B, L, 2]`` to ``x_0 [B, L, 2]``.

    ``cond``: from :func:`encode_map`, batch B or 1. ``key`` only drives the extra noise of
    ``eta > 0`` (eta = 0 is deterministic given ``x_T``; eta = 1 is DDPM-like ancestral
    sampling). ``clip`` clamps the predicted x_0 to [-1, 1] at every step. Each step reads
    the map at the previous step's x_0 estimate (self-conditioned queries, see ddpm_loss).
    ``road_guidance``: weight of the ``road_shift`` applied to each x_0 estimate.
    """
    num_steps = check_int("num_steps", num_steps, 1, config.timesteps)
    schedule = schedule_of(config)
    ts = ddim_timesteps(config.timesteps, num_steps)
    t_prev = jnp.concatenate([ts[1:], jnp.array([-1], jnp.int32)])
    batch = x_T.shape[0]
    sigmas = config.unet.blur_sigmas

    def body(carry, inputs):
        x, query = carry
        t, tp, k = inputs
        ab = schedule.alpha_bars[t]
        ab_prev = jnp.where(tp >= 0, schedule.alpha_bars[jnp.maximum(tp, 0)], 1.0)
        eps = guided_eps(config, params, x, jnp.full((batch,), t), cond, guidance, query)
        x0 = (x - jnp.sqrt(1.0 - ab) * eps) / jnp.sqrt(ab)
        x0 = x0 + road_guidance * _road_shift_batch(cond["local"], x0, sigmas)
        if clip:
            x0 = jnp.clip(x0, -1.0, 1.0)
        eps = (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1.0 - ab)
        sigma = eta * jnp.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
        direction = jnp.sqrt(jnp.maximum(1.0 - ab_prev - sigma**2, 0.0)) * eps
        z = jax.random.normal(k, x.shape, x.dtype)
        return (jnp.sqrt(ab_prev) * x0 + direction + sigma * z, jnp.clip(x0, -1.0, 1.0)), None

    query = query_points(schedule, x_T, jnp.full((batch,), ts[0]))
    (x0, _), _ = jax.lax.scan(
        body, (x_T, query), (ts, t_prev, jax.random.split(key, num_steps))
    )
    return x0


def sample_trajectories(
    params,
    raster: jax.Array,
    key: jax.Array,
    num: int,
    num_steps: int = 50,
    guidance: float | jax.Array = 2.5,
    eta: float | jax.Array = 0.0,
    config: DiffusionConfig = DiffusionConfig(),
    road_guidance: float | jax.Array = 1.0,
) -> jax.Array:
    """``num`` trajectories ``[num, L, 2]`` (normalised to [-1, 1]) for one map ``[H, W, C]``.

    Pure and jittable (``num``, ``num_steps`` and ``config`` static); vmap over ``raster`` and
    ``key`` for many maps. ``road_guidance`` in [0, 1] (module docstring; 0 = the network
    alone). Measured effects of both guidances on unseen maps: see the train module.
    """
    num = check_int("num", num, 1)
    k_init, k_steps = jax.random.split(key)
    cond = encode_map(config, params, raster[None])
    x_T = jax.random.normal(k_init, (num, config.unet.length, 2), jnp.float32)
    return ddim_sample(config, params, cond, x_T, k_steps, num_steps, eta, guidance,
                       road_guidance=road_guidance)
