"""GRU twin predictor of the DNT paper: the next position of every user from its last K twin states.

The model reads one user's last ``K`` twin states (positions, metres) and predicts where the
user is one slot later. Users are independent sequences that share the weights: a history
``[K, U, 2]`` is ``U`` sequences of length ``K``.

Per time step ``k`` of a sequence the GRU (hidden 128, :class:`GRUPredictor`) reads 4
features::

    (pos_k - centre) / half_size        position in the area, in [-1, 1]
    (pos_k - pos_{k-1}) / step_length   last displacement in steps (0 for k = 0)

and a dense head maps the last hidden state to the displacement in steps; the prediction is
``pos_{K-1} + step_length * displacement``, clipped to the area. Area and step length are those
of the training walk (the ``dnt-sync-v0`` defaults: [-150, 150] x [-50, 50] m, 5 m), stored in
the checkpoint's metadata.

Training data: 2000 trajectories of 30 slots of :class:`dtwin_jax.mobility.RandomWalk`, each
user with its own move probabilities drawn from a Dirichlet(1, ..., 1) (so users drift, and a
history says which way). Each trajectory is left-padded with ``K - 1`` copies of its first
position (an env starts its twin as if users had rested before slot 0) and cut into every window
of ``K`` states with the following position as the target. Loss: mean squared displacement error
(steps^2); Adam, learning rate 1e-3.

``python -m dtwin_jax.twins.predictor --out dtwin_jax/data/dnt_gru.msgpack`` trains and saves
the shipped checkpoint (metadata: config, command, train and validation errors);
:func:`load_predictor` returns the model as a function ``history [K, U, 2] -> [U, 2]``;
:func:`evaluate_predictor` compares any predictor with "last known position" on held-out walks.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dtwin_jax import _checks
from dtwin_jax.checkpoint import load_checkpoint, save_checkpoint
from dtwin_jax.mobility import RandomWalk
from dtwin_jax.mobility.base import check_area

__all__ = [
    "SHIPPED_CHECKPOINT",
    "GRUPredictor",
    "PredictorConfig",
    "evaluate_predictor",
    "load_predictor",
    "persistence",
    "random_walk_trajectories",
    "train_predictor",
]

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "dnt_gru.msgpack"
_KIND = "dnt_gru_predictor"


@dataclasses.dataclass(frozen=True)
class PredictorConfig:
    """Model and training settings (all validated in ``__post_init__``).

    history: K, states per input sequence; hidden: GRU width; area_min/area_max: the walk's
    area (m); step_length: m per slot; num_train/num_val: trajectories; traj_len: slots per
    trajectory; dirichlet: concentration of the per-user move probabilities; lr: Adam step;
    batch_size: windows per update; num_updates: Adam updates; seed: data and init seed.
    """

    history: int = 5
    hidden: int = 128
    area_min: tuple[float, float] = (-150.0, -50.0)
    area_max: tuple[float, float] = (150.0, 50.0)
    step_length: float = 5.0
    num_train: int = 2000
    num_val: int = 200
    traj_len: int = 30
    dirichlet: float = 1.0
    lr: float = 1e-3
    batch_size: int = 256
    num_updates: int = 4000
    seed: int = 0

    def __post_init__(self):
        _checks.check_int("history", self.history, lo=1, hi=64)
        _checks.check_int("hidden", self.hidden, lo=1, hi=4096)
        check_area(np.asarray(self.area_min, float), np.asarray(self.area_max, float))
        _checks.check_float("step_length", self.step_length, lo=0.0, lo_open=True)
        _checks.check_int("num_train", self.num_train, lo=1)
        _checks.check_int("num_val", self.num_val, lo=1)
        _checks.check_int("traj_len", self.traj_len, lo=2)
        _checks.check_float("dirichlet", self.dirichlet, lo=0.0, lo_open=True)
        _checks.check_float("lr", self.lr, lo=0.0, lo_open=True)
        _checks.check_int("batch_size", self.batch_size, lo=1)
        _checks.check_int("num_updates", self.num_updates, lo=1)
        _checks.check_int("seed", self.seed, lo=0, hi=2**32 - 1)

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> PredictorConfig:
        """Inverse of :meth:`to_dict` (``area_min``/``area_max`` back to tuples)."""
        d = dict(d)
        for k in ("area_min", "area_max"):
            d[k] = tuple(d[k])
        return cls(**d)


class GRUPredictor(nn.Module):
    """GRU over per-step features ``[..., K, 4]`` -> displacement in steps ``[..., 2]``.

    The standard GRU (as ``flax.linen.GRUCell``: ``r, z = sigmoid(W_i x + b_i + W_h h)``,
    ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``, ``h_0 = 0``),
    written for speed inside the env's step: the three gates' weights are fused into one
    ``[4, 3H]`` input and one ``[H, 3H]`` recurrent matrix, the K steps are unrolled, step 0
    skips its recurrent matmul (``h_0 = 0``) and the sigmoid is ``(1 + tanh(x / 2)) / 2``
    (one transcendental instead of an exp and a division). Parameters: ``input`` (Dense 3H),
    ``hidden_kernel [H, 3H]``, ``hidden_bias_n [H]``, ``head`` (Dense H/2, ReLU), ``out``
    (Dense 2).
    """

    hidden: int

    @nn.compact
    def __call__(self, feats: jax.Array) -> jax.Array:
        hsz = self.hidden
        dense_in = nn.Dense(3 * hsz, name="input")
        w_h = self.param("hidden_kernel", nn.initializers.orthogonal(), (hsz, 3 * hsz))
        b_hn = self.param("hidden_bias_n", nn.initializers.zeros_init(), (hsz,))
        h = None
        for k in range(feats.shape[-2]):
            # per-step projection: XLA fuses the 4-wide contraction into the gate loop
            x_r, x_z, x_n = jnp.split(dense_in(feats[..., k, :]), 3, axis=-1)
            if h is None:  # h_0 = 0: no recurrent matmul
                r, z = _sigmoid(x_r), _sigmoid(x_z)
                h = (1.0 - z) * jnp.tanh(x_n + r * b_hn)
            else:
                h_r, h_z, h_n = jnp.split(h @ w_h, 3, axis=-1)
                r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
                n = jnp.tanh(x_n + r * (h_n + b_hn))
                h = (1.0 - z) * n + z * h
        return nn.Dense(2, name="out")(nn.relu(nn.Dense(hsz // 2, name="head")(h)))


def _sigmoid(x: jax.Array) -> jax.Array:
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _features(seq: jax.Array, config: PredictorConfig) -> jax.Array:
    """``seq [..., K, 2]`` positions (m) -> ``[..., K, 4]`` features (module docstring)."""
    lo, hi = jnp.asarray(config.area_min), jnp.asarray(config.area_max)
    pos = (seq - (lo + hi) / 2) / ((hi - lo) / 2)
    disp = jnp.diff(seq, axis=-2, prepend=seq[..., :1, :]) / config.step_length
    return jnp.concatenate([pos, disp], axis=-1).astype(jnp.float32)


def _predict_seq(model: GRUPredictor, weights, seq: jax.Array, config: PredictorConfig):
    """Next position ``[..., 2]`` (m) of sequences ``seq [..., K, 2]``."""
    step = model.apply(weights, _features(seq, config))
    nxt = seq[..., -1, :] + config.step_length * step
    return jnp.clip(nxt, jnp.asarray(config.area_min), jnp.asarray(config.area_max))


def persistence(history: jax.Array) -> jax.Array:
    """"Last known position": ``history [K, U, 2] -> history[-1]``."""
    return history[-1]


def random_walk_trajectories(key: jax.Array, num: int, length: int, config: PredictorConfig):
    """``num`` random-walk trajectories ``[num, length, 2]`` (m) and their move probabilities
    ``[num, 5]``: users uniform in the area, per-user Dirichlet move probabilities."""
    walk = RandomWalk(num)
    k_p, k_0, k_w = jax.random.split(key, 3)
    probs = jax.random.dirichlet(k_p, jnp.full((5,), config.dirichlet), (num,))
    params = walk.default_params.replace(
        area_min=jnp.asarray(config.area_min, jnp.float32),
        area_max=jnp.asarray(config.area_max, jnp.float32),
        move_probs=probs.astype(jnp.float32),
        step_length=jnp.float32(config.step_length),
    )
    s0 = walk.init(k_0, params)
    _, states = walk.rollout(k_w, s0, params, length - 1)
    traj = jnp.concatenate([s0.pos[None], states.pos], axis=0)  # [T, num, 2]
    return jnp.swapaxes(traj, 0, 1), probs


def _windows(traj: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """All windows of a left-padded ``traj [N, T, 2]``: inputs ``[N*(T-1), K, 2]`` and targets
    ``[N*(T-1), 2]`` (padding: ``K - 1`` copies of the first position)."""
    padded = jnp.concatenate([jnp.repeat(traj[:, :1], k - 1, axis=1), traj], axis=1)
    t = traj.shape[1]
    idx = jnp.arange(t - 1)[:, None] + jnp.arange(k)[None, :]  # [T-1, K]
    x = padded[:, idx]  # [N, T-1, K, 2]
    y = traj[:, 1:]  # [N, T-1, 2]
    return x.reshape(-1, k, 2), y.reshape(-1, 2)


def train_predictor(config: PredictorConfig = PredictorConfig(), progress: bool = False):
    """Train the GRU; returns ``(weights, metrics)`` with train/val MSE (m^2) and seconds."""
    key = jax.random.PRNGKey(config.seed)
    k_tr, k_va, k_init, k_loop = jax.random.split(key, 4)
    x, y = _windows(random_walk_trajectories(k_tr, config.num_train, config.traj_len, config)[0],
                    config.history)
    model = GRUPredictor(config.hidden)
    weights = model.init(k_init, _features(x[:2], config))
    opt = optax.adam(config.lr)

    def loss_fn(w, xb, yb):
        pred = _predict_seq(model, w, xb, config)
        return jnp.mean(jnp.sum((pred - yb) ** 2, -1)) / config.step_length**2

    @jax.jit
    def run_chunk(carry, keys):
        def body(c, k):
            w, s = c
            i = jax.random.randint(k, (config.batch_size,), 0, x.shape[0])
            loss, g = jax.value_and_grad(loss_fn)(w, x[i], y[i])
            upd, s = opt.update(g, s, w)
            return (optax.apply_updates(w, upd), s), loss

        return jax.lax.scan(body, carry, keys)

    carry = (weights, opt.init(weights))
    keys = jax.random.split(k_loop, config.num_updates)
    chunk = 100
    start = time.perf_counter()
    losses = []
    for i in range(0, config.num_updates, chunk):
        carry, loss = run_chunk(carry, keys[i:i + chunk])
        losses.append(float(loss.mean()))
        if progress:
            print(f"update {i + len(loss):5d}  loss {losses[-1]:.4f} steps^2", flush=True)
    weights = carry[0]
    seconds = time.perf_counter() - start
    step2 = config.step_length**2
    predict = _history_fn(model, weights, config)
    val = evaluate_predictor(predict, jax.random.PRNGKey(config.seed + 1), config,
                             num_traj=config.num_val)
    metrics = {
        "train_mse_m2": float(losses[-1] * step2),
        "val": val,
        "seconds": seconds,
    }
    return weights, metrics


def _history_fn(model: GRUPredictor, weights, config: PredictorConfig):
    """The model as ``history [K, U, 2] -> [U, 2]`` (m)."""

    def predict(history: jax.Array) -> jax.Array:
        return _predict_seq(model, weights, jnp.swapaxes(history, -3, -2), config)

    return predict


def evaluate_predictor(predict: Callable, key: jax.Array,
                       config: PredictorConfig = PredictorConfig(), num_traj: int = 500,
                       horizon: int = 5) -> dict:
    """Errors of ``predict`` (``history [K, U, 2] -> [U, 2]``) on held-out drifting walks.

    Walks are drawn as in training (``num_traj`` users, ``config.traj_len`` slots). Returns
    mean squared errors in m^2 per user and slot:

    - ``mse_model``: one-step prediction vs the true next position (every window, the
      left-padded start included);
    - ``mse_last_known``: the "last known position" predictor vs the true next position;
    - ``mse_oracle``: the true expected next position (known move probabilities, no clipping)
      vs the true next position - a floor no predictor beats on average;
    - ``mean_shift_m``: mean distance between the prediction and the last known position;
    - ``open_loop_model`` / ``open_loop_last_known`` ``[horizon]``: error ``h`` slots after
      the last exact position when the predictions are fed back as history (the twin with
      no updates), ``h = 1 .. horizon``.
    """
    k = config.history
    num_traj = _checks.check_int("num_traj", num_traj, lo=1)
    horizon = _checks.check_int("horizon", horizon, lo=1, hi=config.traj_len - k)
    traj, probs = random_walk_trajectories(key, num_traj, config.traj_len, config)
    x, y = _windows(traj, k)  # [W, K, 2], [W, 2]
    pred = jax.jit(predict)(jnp.swapaxes(x, 0, 1))
    last = x[:, -1]
    moves = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0], [1.0, 0.0]])
    drift = config.step_length * np.asarray(probs) @ moves  # [N, 2]
    oracle = last + jnp.repeat(jnp.asarray(drift, jnp.float32), traj.shape[1] - 1, axis=0)

    def mse(a):
        return float(jnp.mean(jnp.sum((a - y) ** 2, -1)))

    open_model, open_last = _open_loop(predict, traj, k, horizon)
    return {
        "mse_model": mse(pred),
        "mse_last_known": mse(last),
        "mse_oracle": mse(oracle),
        "mean_shift_m": float(jnp.mean(jnp.linalg.norm(pred - last, axis=-1))),
        "open_loop_model": open_model,
        "open_loop_last_known": open_last,
        "num_traj": num_traj,
    }


def _open_loop(predict: Callable, traj: jax.Array, k: int, horizon: int):
    """Mean squared error per horizon when the twin runs on its own predictions from the
    true window ``traj[:, :k]`` (lists of ``horizon`` floats, m^2)."""

    @jax.jit
    def roll(hist):
        def body(h, _):
            nxt = predict(h)
            return jnp.concatenate([h[1:], nxt[None]], axis=0), nxt

        return jax.lax.scan(body, hist, None, length=horizon)[1]  # [H, N, 2]

    preds = roll(jnp.swapaxes(traj[:, :k], 0, 1))
    truth = jnp.swapaxes(traj[:, k:k + horizon], 0, 1)
    last = traj[:, k - 1][None]
    err = jnp.mean(jnp.sum((preds - truth) ** 2, -1), axis=1)
    err_last = jnp.mean(jnp.sum((last - truth) ** 2, -1), axis=1)
    return [float(e) for e in err], [float(e) for e in err_last]


def load_predictor(path: str | Path | None = None) -> Callable:
    """The GRU of a checkpoint (default: the shipped one) as ``history [K, U, 2] -> [U, 2]``.

    The architecture and normalisation come from the checkpoint's metadata; the weights are
    checked against a freshly shaped network (ValueError naming the leaf on a mismatch).
    The returned function is pure and jittable (weights are closed-over constants).
    """
    path = SHIPPED_CHECKPOINT if path is None else Path(path)
    _, metadata = load_checkpoint(path)
    if metadata.get("kind") != _KIND:
        raise ValueError(f"checkpoint {str(path)!r} is not a {_KIND} checkpoint")
    config = PredictorConfig.from_dict(metadata["config"])
    model = GRUPredictor(config.hidden)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, config.history, 4), jnp.float32))
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    weights, _ = load_checkpoint(path, target)
    predict = _history_fn(model, jax.tree.map(jnp.asarray, weights), config)
    predict.config = config
    return predict


def main(argv: list[str] | None = None) -> None:
    """CLI: train on random walks and save the checkpoint (atomic write)."""
    parser = argparse.ArgumentParser(description="Train the DNT GRU twin predictor.")
    parser.add_argument("--out", required=True, help="checkpoint path (.msgpack)")
    parser.add_argument("--num-updates", type=int, default=PredictorConfig.num_updates)
    parser.add_argument("--seed", type=int, default=PredictorConfig.seed)
    args = parser.parse_args(argv)
    config = PredictorConfig(num_updates=args.num_updates, seed=args.seed)
    weights, metrics = train_predictor(config, progress=True)
    metadata = {
        "kind": _KIND,
        "config": config.to_dict(),
        "command": "python -m dtwin_jax.twins.predictor " + " ".join(
            sys.argv[1:] if argv is None else argv),
        **metrics,
    }
    save_checkpoint(args.out, weights, metadata)
    print(metadata)


if __name__ == "__main__":
    main()
