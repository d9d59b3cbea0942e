"""GeneratedMobility: users replay trajectories sampled from the Map2Traj model.

Each twin keeps a trajectory bank ``[P, L, 2]`` (metres). ``init`` (a twin reset) samples
only ``refresh`` fresh trajectories with the diffusion sampler (DDIM, one ``lax.scan``),
writes them into the bank at a ring position, and gives the users ``num_users`` bank entries:
the fresh ones first, the rest drawn at random without replacement, optionally augmented
(random reversal and, for looping playback, a random cyclic start offset). ``step`` replays
them with :class:`Playback`. Everything is jittable, so a training loop calls ``init`` inside
its own ``lax.scan`` whenever a twin resets.

Cost of a reset: ``num_steps`` network calls on ``2 * refresh`` trajectories (classifier-free
guidance), linear in ``refresh``; ``step`` is as cheap as Playback. ``refresh == bank_size ==
num_users`` with ``augment=False`` is the all-fresh mode: every user gets a new sample on
every reset (``num_users`` samples per reset).

A first reset (:meth:`init`) starts from ``params.bank`` (fill it with :meth:`fill_bank`;
:meth:`from_checkpoint` does). Auto-resets (``Environment.reset_from``, ``VecEnv``) call
:meth:`reinit`, which continues from the bank and ring pointer of the finished episode's
state, so a twin renews its whole bank every ``bank_size / refresh`` episodes.

Note: this module imports the model from ``dtwin_jax.twins.map2traj`` (a layer above
mobility); the model modules import nothing from envs, so there is no cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
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
    guidance scale; eta [] DDIM noise (0 = deterministic given the key); road_guidance [] in
    [0, 1]: pull of each DDIM step onto the raster's streets (0 = the network alone);
    bank [P, L, 2] m: the trajectory bank a reset starts from (see :meth:`fill_bank`)."""

    area_min: jax.Array
    area_max: jax.Array
    net: Any
    raster: jax.Array
    sample_dt: jax.Array
    dt: jax.Array
    guidance: jax.Array
    eta: jax.Array
    road_guidance: jax.Array
    bank: jax.Array


@struct.dataclass
class GeneratedState:
    """pos [U, 2] m; t [] int32 step counter; traj [U, L, 2] m: the users' trajectories;
    bank [P, L, 2] m: the twin's trajectory bank; ptr [] int32: ring position of the next
    refresh."""

    pos: jax.Array
    t: jax.Array
    traj: jax.Array
    bank: jax.Array
    ptr: jax.Array


class GeneratedMobility(base.MobilityModel):
    """Users follow trajectories sampled from a map-conditioned diffusion model.

    Static: ``num_users`` U, the model ``config`` (architecture, length L; default
    ``DiffusionConfig()``), ``map_shape`` ``(H, W, C)``, DDIM ``num_steps``, the Playback
    ``loop`` flag (after the last point: jump back to the first, or hold the last one),
    ``bank_size`` P in ``[U, inf)`` (default ``2 U``), ``refresh`` R in ``[1, P]`` fresh samples
    per reset (default ``max(1, U // 8)``) and ``augment`` (random reversal and, with ``loop``,
    a random cyclic start offset of each user's trajectory).
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
        bank_size: int | None = None,
        refresh: int | None = None,
        augment: bool = True,
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
        bank_size = 2 * self.num_users if bank_size is None else bank_size
        self.bank_size = _checks.check_int("bank_size", bank_size, lo=self.num_users)
        refresh = max(1, self.num_users // 8) if refresh is None else refresh
        self.refresh = _checks.check_int("refresh", refresh, lo=1, hi=self.bank_size)
        self.augment = bool(_checks.check_choice("augment", augment, (True, False)))
        self.playback = Playback(num_users, config.unet.length, loop)

    @property
    def all_fresh(self) -> bool:
        """True when every reset overwrites the whole bank (``refresh == bank_size``)."""
        return self.refresh == self.bank_size

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        raster,
        bounds,
        num_users: int,
        num_steps: int = 20,
        loop: bool = True,
        bank_size: int | None = None,
        refresh: int | None = None,
        augment: bool = True,
        bank_key: jax.Array | None = None,
        **overrides,
    ) -> tuple[GeneratedMobility, GeneratedParams]:
        """Model and validated params from a trained checkpoint (``train.main`` output).

        ``raster [H, W, C]`` in [0, 1]; ``bounds [2, 2]`` (min xy, max xy) metres, the frame
        of the raster; ``overrides``: other ``Params`` fields (dt, sample_dt, guidance, eta,
        road_guidance).
        Unless the model is all-fresh, the bank is filled with ``bank_size`` samples
        (:meth:`fill_bank` with ``bank_key``, default ``jax.random.key(0)``).
        """
        from dtwin_jax.twins.map2traj.train import load_trained

        config, net, _ = load_trained(path)
        raster = _checks.check_array("raster", raster, shape=(None, None, None), lo=0.0, hi=1.0)
        bounds = _checks.check_array("bounds", bounds, shape=(2, 2))
        model = cls(num_users, config, raster.shape, num_steps, loop, bank_size, refresh, augment)
        params = model.make_params(
            net=net, raster=raster, area_min=bounds[0], area_max=bounds[1], **overrides
        )
        if not model.all_fresh:
            key = jax.random.key(0) if bank_key is None else bank_key
            params = jax.jit(model.fill_bank)(key, params)
        return model, params

    def _net_shapes(self):
        """Shapes and dtypes of the network variables (``jax.ShapeDtypeStruct`` pytree)."""
        return jax.eval_shape(
            lambda k: init_params(self.config, k, self.map_shape), jax.random.key(0)
        )

    @property
    def default_params(self) -> GeneratedParams:
        """Placeholder all-zero weights on an empty 1 km map, 2 s between samples, and a bank
        parking everyone at the centre.

        Zero weights predict zero noise, so samples are clipped Gaussian noise: set ``net``
        to trained weights and fill the bank (see :meth:`from_checkpoint`, :meth:`fill_bank`).
        """
        return GeneratedParams(
            area_min=base.f32([0.0, 0.0]),
            area_max=base.f32([1000.0, 1000.0]),
            net=jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), self._net_shapes()),
            raster=jnp.zeros(self.map_shape, jnp.float32),
            sample_dt=base.f32(2.0),
            dt=base.f32(1.0),
            guidance=base.f32(2.5),
            eta=base.f32(0.0),
            road_guidance=base.f32(1.0),
            bank=jnp.full((self.bank_size, self.config.unet.length, 2), 500.0, jnp.float32),
        )

    def check_params(self, params: GeneratedParams, rules: Rules = CONCRETE) -> None:
        base.check_area(params.area_min, params.area_max, rules)
        rules.array("raster", params.raster, shape=self.map_shape, lo=0.0, hi=1.0)
        rules.array("sample_dt", params.sample_dt, shape=(), lo=0.0, lo_open=True)
        rules.array("dt", params.dt, shape=(), lo=0.0, lo_open=True)
        rules.array("guidance", params.guidance, shape=())
        rules.array("eta", params.eta, shape=(), lo=0.0, hi=1.0)
        rules.array("road_guidance", params.road_guidance, shape=(), lo=0.0, hi=1.0)
        rules.array("bank", params.bank, shape=(self.bank_size, self.config.unet.length, 2))
        want = self._net_shapes()
        if jax.tree_util.tree_structure(params.net) != jax.tree_util.tree_structure(want):
            raise ValueError("net does not have the structure of this model's network")
        for path, leaf, spec in zip(
            _paths(params.net), jax.tree_util.tree_leaves(params.net),
            jax.tree_util.tree_leaves(want), strict=True,
        ):  # fmt: skip
            rules.array(f"net{path}", leaf, shape=spec.shape)

    def sample(self, key: jax.Array, params: GeneratedParams, num: int | None = None):
        """``num`` (static, default U) fresh trajectories ``[num, L, 2]`` in metres."""
        num = self.num_users if num is None else num
        unit = sample_trajectories(
            params.net, params.raster, key, num, num_steps=self.num_steps,
            guidance=params.guidance, eta=params.eta, config=self.config,
            road_guidance=params.road_guidance,
        )  # fmt: skip
        lo, hi = params.area_min, params.area_max
        return lo + (unit + 1.0) * 0.5 * (hi - lo)

    def fill_bank(self, key: jax.Array, params: GeneratedParams) -> GeneratedParams:
        """``params`` with ``bank [P, L, 2]`` replaced by P fresh samples (jittable; vmap it
        over keys and params for a batch of twins)."""
        return params.replace(bank=self.sample(key, params, self.bank_size))

    def init(self, key: jax.Array, params: GeneratedParams) -> GeneratedState:
        """Refresh R entries of ``params.bank`` (from a random ring position) and stand every
        user at the first point of its trajectory."""
        k_ptr, k_start = jax.random.split(key)
        ptr = jax.random.randint(k_ptr, (), 0, self.bank_size, jnp.int32)
        return self._start(k_start, params.bank, ptr, params)

    def reinit(self, key: jax.Array, state: GeneratedState, params: GeneratedParams):
        """Like :meth:`init`, but refresh the bank of a finished episode's ``state`` at its ring
        pointer (so successive resets renew the bank R entries at a time)."""
        return self._start(key, state.bank, state.ptr, params)

    def _start(self, key, bank, ptr, params) -> GeneratedState:
        k_fresh, k_draw, k_aug = jax.random.split(key, 3)
        p, r = self.bank_size, self.refresh
        fresh = self.sample(k_fresh, params, r)
        bank = bank.at[(ptr + jnp.arange(r)) % p].set(fresh)
        # the refreshed slots first (in ring order), then the others in random order
        age = (jnp.arange(p) - ptr) % p
        score = jnp.where(age < r, age - r, jax.random.uniform(k_draw, (p,)))
        traj = bank[jnp.argsort(score)[: self.num_users]]
        if self.augment:
            traj = self._augment(k_aug, traj)
        pb = self.playback.init(key, self._playback_params(params, traj))
        return GeneratedState(pos=pb.pos, t=pb.t, traj=traj, bank=bank, ptr=(ptr + r) % p)

    def _augment(self, key: jax.Array, traj: jax.Array) -> jax.Array:
        """Reverse each trajectory ``[U, L, 2]`` with probability 1/2 and, when looping, start
        it at a uniform random point (a cyclic shift of the looped path)."""
        k_rev, k_shift = jax.random.split(key)
        u, length = self.num_users, traj.shape[1]
        idx = jnp.broadcast_to(jnp.arange(length), (u, length))
        if self.playback.loop:
            idx = (idx + jax.random.randint(k_shift, (u, 1), 0, length)) % length
        reverse = jax.random.bernoulli(k_rev, 0.5, (u, 1))
        idx = jnp.where(reverse, length - 1 - idx, idx)
        return jnp.take_along_axis(traj, idx[..., None], axis=1)

    def _playback_params(self, params: GeneratedParams, traj: jax.Array) -> PlaybackParams:
        return PlaybackParams(
            area_min=params.area_min,
            area_max=params.area_max,
            traj=traj,
            sample_dt=params.sample_dt,
            dt=params.dt,
        )

    def step(self, key: jax.Array, state: GeneratedState, params: GeneratedParams):
        """Advance ``dt`` along the users' trajectories (interpolated, clipped to the area)."""
        pb = self.playback.step(key, state, self._playback_params(params, state.traj))
        return state.replace(pos=pb.pos, t=pb.t)
