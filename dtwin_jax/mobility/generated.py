"""GeneratedMobility: users replay trajectories freshly sampled from the Map2Traj model.

``init`` runs the diffusion sampler (DDIM, one ``lax.scan``) for ``num_users`` trajectories on
the map in ``params.raster``, converts them to metres and replays them with :class:`Playback`
in ``step``. Everything is jittable, so a training loop can call ``init`` inside its own
``lax.scan`` whenever a twin resets (new users, new trajectories). Sampling costs
``num_steps`` network calls on ``2 * num_users`` trajectories (classifier-free guidance);
``step`` is as cheap as Playback.

Note: this module imports the model from ``dtwin_jax.twins.map2traj`` (a layer above
mobility); the model modules import nothing from envs, so there is no cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dtwin_jax import _checks
from dtwin_jax.mobility import base
from dtwin_jax.mobility.playback import Playback, PlaybackParams
from dtwin_jax.twins.map2traj.diffusion import DiffusionConfig, init_params, sample_trajectories


def _paths(tree) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


@struct.dataclass
class GeneratedParams:
    """area_min/area_max [2] m: the map frame (the bounds the model's [-1, 1] maps onto);
    net: network variables (pytree); raster [H, W, C] in [0, 1]: the street map;
    sample_dt [] s between trajectory points; dt [] s per step; guidance [] classifier-free
    guidance scale; eta [] DDIM noise (0 = deterministic given the key)."""

    area_min: jax.Array
    area_max: jax.Array
    net: Any
    raster: jax.Array
    sample_dt: jax.Array
    dt: jax.Array
    guidance: jax.Array
    eta: jax.Array


@struct.dataclass
class GeneratedState:
    """pos [U, 2] m; t [] int32 step counter; traj [U, L, 2] m: the sampled trajectories."""

    pos: jax.Array
    t: jax.Array
    traj: jax.Array


class GeneratedMobility(base.MobilityModel):
    """Users follow trajectories sampled from a map-conditioned diffusion model.

    Static: ``num_users``, the model ``config`` (architecture, length L; default
    ``DiffusionConfig()``), ``map_shape``
    ``(H, W, C)``, DDIM ``num_steps`` and the Playback ``loop`` flag (after the last point:
    jump back to the first, or hold the last one).
    """

    Params = GeneratedParams
    State = GeneratedState

    def __init__(
        self,
        num_users: int,
        config: DiffusionConfig | None = None,
        map_shape: tuple[int, int, int] = (64, 64, 2),
        num_steps: int = 20,
        loop: bool = True,
    ):
        self.num_users = _checks.check_int("num_users", num_users, lo=1)
        config = DiffusionConfig() if config is None else config
        if not isinstance(config, DiffusionConfig):
            raise TypeError(f"config must be a DiffusionConfig, got {type(config).__name__}")
        self.config = config
        if len(map_shape) != 3:
            raise ValueError(f"map_shape={map_shape!r} must be (H, W, C)")
        self.map_shape = tuple(
            _checks.check_int(f"map_shape[{i}]", s, lo=1) for i, s in enumerate(map_shape)
        )
        self.num_steps = _checks.check_int("num_steps", num_steps, lo=1, hi=config.timesteps)
        self.playback = Playback(num_users, config.unet.length, loop)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        raster,
        bounds,
        num_users: int,
        num_steps: int = 20,
        loop: bool = True,
        **overrides,
    ) -> tuple[GeneratedMobility, GeneratedParams]:
        """Model and validated params from a trained checkpoint (``train.main`` output).

        ``raster [H, W, C]`` in [0, 1]; ``bounds [2, 2]`` (min xy, max xy) metres, the frame
        of the raster; ``overrides``: other ``Params`` fields (dt, sample_dt, guidance, eta).
        """
        from dtwin_jax.twins.map2traj.train import load_trained

        config, net, _ = load_trained(path)
        raster = _checks.check_array("raster", raster, shape=(None, None, None), lo=0.0, hi=1.0)
        bounds = _checks.check_array("bounds", bounds, shape=(2, 2))
        model = cls(num_users, config, raster.shape, num_steps, loop)
        params = model.make_params(
            net=net, raster=raster, area_min=bounds[0], area_max=bounds[1], **overrides
        )
        return model, params

    def _net_shapes(self):
        """Shapes and dtypes of the network variables (``jax.ShapeDtypeStruct`` pytree)."""
        return jax.eval_shape(
            lambda k: init_params(self.config, k, self.map_shape), jax.random.key(0)
        )

    def default_params(self) -> GeneratedParams:
        """Placeholder all-zero weights on an empty 1 km map, 2 s between samples.

        Zero weights predict zero noise, so samples are clipped Gaussian noise: set ``net``
        to trained weights (see :meth:`from_checkpoint`).
        """
        return GeneratedParams(
            area_min=base.f32([0.0, 0.0]),
            area_max=base.f32([1000.0, 1000.0]),
            net=jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), self._net_shapes()),
            raster=jnp.zeros(self.map_shape, jnp.float32),
            sample_dt=base.f32(2.0),
            dt=base.f32(1.0),
            guidance=base.f32(3.0),
            eta=base.f32(0.0),
        )

    def check_params(self, params: GeneratedParams) -> None:
        base.check_area(params.area_min, params.area_max)
        _checks.check_array("raster", params.raster, shape=self.map_shape, lo=0.0, hi=1.0)
        base.check_scalar("sample_dt", params.sample_dt, lo=0.0, lo_open=True)
        base.check_scalar("dt", params.dt, lo=0.0, lo_open=True)
        base.check_scalar("guidance", params.guidance)
        base.check_scalar("eta", params.eta, lo=0.0, hi=1.0)
        want = self._net_shapes()
        if jax.tree_util.tree_structure(params.net) != jax.tree_util.tree_structure(want):
            raise ValueError("net does not have the structure of this model's network")
        for path, leaf, spec in zip(
            _paths(params.net), jax.tree_util.tree_leaves(params.net),
            jax.tree_util.tree_leaves(want), strict=True,
        ):  # fmt: skip
            if np.shape(leaf) != spec.shape:
                raise ValueError(f"net{path} has shape {np.shape(leaf)}; expected {spec.shape}")
            if not np.all(np.isfinite(np.asarray(leaf))):
                raise ValueError(f"net{path} contains NaN or inf")

    def _playback_params(self, params: GeneratedParams, traj: jax.Array) -> PlaybackParams:
        return PlaybackParams(
            area_min=params.area_min,
            area_max=params.area_max,
            traj=traj,
            sample_dt=params.sample_dt,
            dt=params.dt,
        )

    def sample(self, key: jax.Array, params: GeneratedParams) -> jax.Array:
        """Fresh trajectories ``[U, L, 2]`` in metres (pure, jittable)."""
        unit = sample_trajectories(
            params.net, params.raster, key, self.num_users, num_steps=self.num_steps,
            guidance=params.guidance, eta=params.eta, config=self.config,
        )  # fmt: skip
        lo, hi = params.area_min, params.area_max
        return lo + (unit + 1.0) * 0.5 * (hi - lo)

    def init(self, key: jax.Array, params: GeneratedParams) -> GeneratedState:
        """Sample new trajectories and stand every user at its first point."""
        traj = self.sample(key, params)
        pb = self.playback.init(key, self._playback_params(params, traj))
        return GeneratedState(pos=pb.pos, t=pb.t, traj=traj)

    def step(self, key: jax.Array, state: GeneratedState, params: GeneratedParams):
        """Advance ``dt`` along the sampled trajectories (interpolated, clipped to the area)."""
        pb = self.playback.step(key, state, self._playback_params(params, state.traj))
        return GeneratedState(pos=pb.pos, t=pb.t, traj=state.traj)
