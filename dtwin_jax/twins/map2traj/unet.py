"""Map-conditioned 1D UNet that predicts the noise of a diffusing trajectory.

The network sees a noisy trajectory ``x [B, L, 2]`` (coordinates normalised to [-1, 1]), the
diffusion step ``t [B]`` and a condition vector ``cond [B, D]`` made by a small CNN from the
street-map raster ``[B, H, W, C]``. Classifier-free guidance: where ``use_cond`` is False the
condition is replaced by a learned "null" vector, so one network gives both the conditional and
the unconditional noise estimate.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dtwin_jax._checks import check_float, check_int


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Static architecture of :class:`TrajUNet` (hashable, stored in checkpoint metadata).

    length: trajectory points L (must be divisible by 2**(len(channels)-1)).
    channels: feature width per resolution level. blocks: residual blocks per level.
    cond_dim: width of the map condition vector. map_channels: CNN widths (each a stride-2 conv).
    blur_sigmas: Gaussian blurs (pixels) of the raster whose values and gradients are read at
    each point's estimated position.
    """

    length: int = 64
    channels: tuple[int, ...] = (32, 64, 96)
    blocks: int = 1
    emb_dim: int = 64
    cond_dim: int = 64
    map_channels: tuple[int, ...] = (16, 32, 32, 64)
    blur_sigmas: tuple[float, ...] = (1.5, 4.0, 16.0)
    groups: int = 8

    def __post_init__(self):
        check_int("length", self.length, 4)
        check_int("blocks", self.blocks, 1, 8)
        check_int("emb_dim", self.emb_dim, 2)
        check_int("cond_dim", self.cond_dim, 1)
        for sigma in self.blur_sigmas:
            check_float("blur_sigmas[i]", sigma, 0.0, lo_open=True)
        check_int("groups", self.groups, 1)
        if not self.channels or not self.map_channels:
            raise ValueError("channels and map_channels must be non-empty tuples of ints")
        for c in self.channels:
            check_int("channels[i]", c, 1)
            if c % self.groups:
                raise ValueError(f"channels entry {c} is not divisible by groups={self.groups}")
        for c in self.map_channels:
            check_int("map_channels[i]", c, 1)
        factor = 2 ** (len(self.channels) - 1)
        if self.length % factor:
            raise ValueError(
                f"length={self.length} must be divisible by 2**(len(channels)-1)={factor}"
            )

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """Inverse of :meth:`to_dict` (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def timestep_embedding(t: jnp.ndarray, dim: int, max_period: float = 10_000.0) -> jnp.ndarray:
    """Sinusoidal embedding of diffusion steps ``t [B]`` (int or float) -> ``[B, dim]``."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class MapEncoder(nn.Module):
    """Raster ``[B, H, W, C]`` -> condition vector ``[B, cond_dim]``.

    Average-pools the raster by 2, then stride-2 convs, then mean+max pooling and an MLP.
    """

    map_channels: tuple[int, ...]
    cond_dim: int

    @nn.compact
    def __call__(self, raster: jnp.ndarray) -> jnp.ndarray:
        h = nn.avg_pool(raster.astype(jnp.float32), (2, 2), strides=(2, 2))
        for c in self.map_channels:
            h = nn.swish(nn.Conv(c, (3, 3), strides=(2, 2))(h))
        # Mean and max pooling keep both "how much road" and "is there road anywhere" cues.
        h = jnp.concatenate([h.mean(axis=(1, 2)), h.max(axis=(1, 2))], axis=-1)
        return nn.Dense(self.cond_dim)(nn.swish(nn.Dense(self.cond_dim)(h)))


def map_features(raster: jnp.ndarray, sigmas: tuple[float, ...]) -> jnp.ndarray:
    """``[B, H, W, C]`` -> ``[B, H, W, C (1 + 3 len(sigmas))]``: raster, blurs, blur gradients.

    For each ``sigma`` (pixels): the Gaussian blur of every channel and its x and y gradients
    (per pixel, times sigma), which point towards nearby roads. Separable row-normalised
    kernels, no learned weights: the features commute with flips and transposes of the map.
    """
    raster = raster.astype(jnp.float32)
    out = [raster]
    for sigma in sigmas:
        blurred = raster
        for axis, n in ((1, raster.shape[1]), (2, raster.shape[2])):
            i = jnp.arange(n, dtype=jnp.float32)
            k = jnp.exp(-0.5 * jnp.square((i[:, None] - i[None, :]) / sigma))
            k = k / k.sum(axis=1, keepdims=True)
            blurred = jnp.moveaxis(jnp.tensordot(k, blurred, axes=((1,), (axis,))), 0, axis)
        # Rescale so that a thin line keeps a peak of about its original height.
        blurred = blurred * (sigma * 2.5066283)
        d_row, d_col = jnp.gradient(blurred, axis=(1, 2))
        out += [blurred, d_col * sigma, d_row * sigma]
    return jnp.concatenate(out, axis=-1)


def sample_local(fmap: jnp.ndarray, xy: jnp.ndarray) -> jnp.ndarray:
    """Bilinear lookup of ``fmap [H, W, F]`` at normalised points ``xy [N, 2]`` -> ``[N, F]``.

    Convention (shared with the rasteriser): column j covers x in the j-th of W equal bins of
    [-1, 1], row i the i-th of H bins in y (row 0 at y = -1). Points outside are clamped.
    """
    h, w = fmap.shape[0], fmap.shape[1]
    col = jnp.clip((xy[:, 0] + 1.0) * 0.5 * w - 0.5, 0.0, w - 1.0)
    row = jnp.clip((xy[:, 1] + 1.0) * 0.5 * h - 0.5, 0.0, h - 1.0)
    c0 = jnp.floor(col).astype(jnp.int32)
    r0 = jnp.floor(row).astype(jnp.int32)
    c1 = jnp.minimum(c0 + 1, w - 1)
    r1 = jnp.minimum(r0 + 1, h - 1)
    fc = (col - c0)[:, None]
    fr = (row - r0)[:, None]
    top = fmap[r0, c0] * (1.0 - fc) + fmap[r0, c1] * fc
    bottom = fmap[r1, c0] * (1.0 - fc) + fmap[r1, c1] * fc
    return top * (1.0 - fr) + bottom * fr


class ResBlock1D(nn.Module):
    """GroupNorm-swish-conv residual block over ``[B, L, C]`` with the embedding added in."""

    features: int
    groups: int

    @nn.compact
    def __call__(self, x: jnp.ndarray, emb: jnp.ndarray) -> jnp.ndarray:
        h = nn.Conv(self.features, (3,))(nn.swish(nn.GroupNorm(self.groups)(x)))
        scale_shift = nn.Dense(2 * self.features)(nn.swish(emb))[:, None, :]
        scale, shift = jnp.split(scale_shift, 2, axis=-1)
        h = nn.GroupNorm(self.groups)(h) * (1.0 + scale) + shift
        h = nn.Conv(self.features, (3,))(nn.swish(h))
        if x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1,))(x)
        return x + h


class TrajUNet(nn.Module):
    """Noise predictor eps(x_t, t, map). Use :meth:`encode_map` once per map, then :meth:`denoise`.

    ``__call__(x [B,L,2], t [B], raster [B,H,W,C], use_cond [B] bool, query [B,L,2])``
    ``-> eps [B,L,2]``.
    """

    config: UNetConfig

    def setup(self):
        cfg = self.config
        self.map_encoder = MapEncoder(cfg.map_channels, cfg.cond_dim)
        self.null_cond = self.param("null_cond", nn.initializers.zeros, (cfg.cond_dim,))
        self.emb_in = nn.Dense(4 * cfg.emb_dim)
        self.emb_out = nn.Dense(cfg.emb_dim)
        self.stem = nn.Conv(cfg.channels[0], (3,))
        self.down = [
            [ResBlock1D(c, cfg.groups) for _ in range(cfg.blocks)] for c in cfg.channels
        ]
        self.mid = [ResBlock1D(cfg.channels[-1], cfg.groups) for _ in range(2)]
        self.up = [
            [ResBlock1D(c, cfg.groups) for _ in range(cfg.blocks + 1)]
            for c in reversed(cfg.channels)
        ]
        self.head_norm = nn.GroupNorm(cfg.groups)
        self.head = nn.Conv(2, (3,), kernel_init=nn.initializers.zeros)

    def encode_map(self, raster: jnp.ndarray) -> dict:
        """Raster ``[B, H, W, C]`` -> condition ``{"vec": [B, D], "local": [B, H, W, F]}``.

        ``vec`` summarises the map; ``local`` (:func:`map_features`) is what the denoiser
        samples at each point's estimated position.
        """
        local = map_features(raster, self.config.blur_sigmas)
        return {"vec": self.encode_vec(raster), "local": local}

    def encode_vec(self, raster: jnp.ndarray) -> jnp.ndarray:
        """The learned summary ``[B, D]`` of rasters ``[B, H, W, C]`` (``encode_map``'s vec)."""
        return self.map_encoder(raster)

    def denoise(
        self,
        x: jnp.ndarray,
        t: jnp.ndarray,
        cond: dict,
        use_cond: jnp.ndarray,
        query: jnp.ndarray,
    ) -> jnp.ndarray:
        """Predicted noise ``[B, L, 2]`` from ``x [B,L,2]``, ``t [B]`` and ``cond``.

        ``cond`` comes from :meth:`encode_map` with batch B or 1 (one map for all samples).
        ``use_cond [B]`` (bool): False swaps the condition for the learned null condition
        (and zero local features). ``query [B, L, 2]``: where to read the local map features
        for each point (the diffusion passes its x_0 estimate ``x_t / sqrt(abar_t)``).
        """
        cfg = self.config
        batch = x.shape[0]
        vec = jnp.broadcast_to(cond["vec"], (batch, cfg.cond_dim))
        vec = jnp.where(use_cond[:, None], vec, self.null_cond[None, :])
        if cond["local"].shape[0] == 1:
            local = sample_local(cond["local"][0], query.reshape(-1, 2))
            local = local.reshape(batch, x.shape[1], -1)
        else:
            local = jax.vmap(sample_local)(cond["local"], query)
        local = local * use_cond[:, None, None]
        emb = timestep_embedding(t, cfg.emb_dim)
        emb = jnp.concatenate([emb, vec], axis=-1)
        emb = self.emb_out(nn.swish(self.emb_in(emb)))
        h = self.stem(jnp.concatenate([x, local], axis=-1))
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < len(self.down) - 1:
                h = nn.avg_pool(h, (2,), strides=(2,))
                skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for level, blocks in enumerate(self.up):
            for block in blocks:
                h = block(jnp.concatenate([h, skips.pop()], axis=-1), emb)
            if level < len(self.up) - 1:
                h = jnp.repeat(h, 2, axis=1)
        return self.head(nn.swish(self.head_norm(h)))

    def __call__(self, x, t, raster, use_cond, query):
        return self.denoise(x, t, self.encode_map(raster), use_cond, query)
