"""Run directories: PPO in any registered twin, trained in jitted chunks with orbax checkpoints,
resumed exactly, evaluated; and paper experiments run through their presets.

A run directory (``dtwin train``, :func:`start_ppo_run`) holds::

    config.json        the resolved spec (env id, constructor kwargs, params overrides, every
                       PPOConfig field, run settings), its fingerprint and provenance
    checkpoints/<N>/   orbax CheckpointManager steps, N = updates done (the last k kept)
    metrics.csv/.json  one row per update (PPO's metrics, see ``ppo.METRIC_NAMES``)
    figures/training.png
    summary.json       status (complete or interrupted), updates done, last metrics, timing
    eval.json          written by ``dtwin eval`` (:func:`evaluate_run`)

Training runs ``ppo.make_train_chunks``: one jitted function advances the runner state by
``chunk_updates`` updates; after each chunk the state is checkpointed and the progress bar
shows the chunk's last metrics. SIGINT (Ctrl-C) during a chunk lets it finish, saves, writes
the outputs with status ``interrupted`` and returns; a second Ctrl-C aborts at once (the saved
checkpoints are untouched: orbax writes each step to a temporary folder and renames it).

A checkpoint stores the runner state (network and optimiser state, the twins' states and
observations, the PRNG key) as a flat list of arrays, plus JSON metadata: the spec's
fingerprint, the leaves' shapes and dtypes, a SHA-256 digest of their bytes and the metrics
history. Restoring checks the fingerprint and shapes before reading and the digest after, so
a truncated, altered or foreign checkpoint is refused with one line naming it, the earlier
steps stay as they were, and ``dtwin resume DIR --step N`` restarts from one of them. A run
resumed from step N takes the same chunks as the uninterrupted run, so its final state is
bit-identical to it.

Why the shipped model files (``dtwin_jax/data/*.msgpack``, :mod:`dtwin_jax.checkpoint`) keep
their own format: they are read-only artefacts inside the wheel, one file each, whose SHA-256
covers the metadata (the architecture that decides how the weights are read) and the payload;
loading them needs only flax, not orbax, and never writes. Orbax is for what changes while a
run goes on: many steps, keep-the-last-k, atomic folder renames.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import os
import pkgutil
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax._checks import check_int
from dtwin_jax.reporting import provenance, write_json

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_FILE = "summary.json"
_KINDS = ("ppo", "experiment")


class RunError(ValueError):
    """A problem the user can fix (bad key or value, missing file, bad checkpoint): its message
    is one line that names it."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How a PPO run is driven: ``seed`` of ``jax.random.PRNGKey``, ``chunk_updates`` updates
    per jitted call (a checkpoint after each), the last ``keep_checkpoints`` kept."""

    seed: int = 0
    chunk_updates: int = 10
    keep_checkpoints: int = 3

    def __post_init__(self):
        check_int("seed", self.seed, lo=0, hi=2**32 - 1)
        check_int("chunk_updates", self.chunk_updates, lo=1)
        check_int("keep_checkpoints", self.keep_checkpoints, lo=1)


@dataclasses.dataclass(frozen=True)
class PPOSpec:
    """Everything a PPO run depends on: ``make(env_id, **env_kwargs)``, ``make_params(**params)``,
    the :class:`~dtwin_jax.learners.ppo.PPOConfig` and the :class:`RunSettings`."""

    env_id: str
    env_kwargs: Mapping[str, Any]
    params: Mapping[str, Any]
    ppo: Any
    run: RunSettings

    def to_dict(self) -> dict:
        """JSON-ready form (tuples become lists; :meth:`from_dict` restores them)."""
        return json.loads(json.dumps({
            "kind": "ppo", "env_id": self.env_id, "env_kwargs": dict(self.env_kwargs),
            "params": dict(self.params), "ppo": dataclasses.asdict(self.ppo),
            "run": dataclasses.asdict(self.run),
        }))

    def fingerprint(self) -> str:
        """SHA-256 of what decides the numbers (everything but chunking and how many to keep)."""
        d = self.to_dict()
        d["run"] = {"seed": self.run.seed}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- discovery


def list_experiments() -> dict[str, list[str]]:
    """``{module name: preset names}`` of the modules in :mod:`dtwin_jax.experiments` that have
    ``PRESETS`` and ``run``."""
    import dtwin_jax.experiments as pkg

    out = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"dtwin_jax.experiments.{info.name}")
        if hasattr(module, "PRESETS") and callable(getattr(module, "run", None)):
            out[info.name] = sorted(module.PRESETS)
    return out


def list_learners() -> dict[str, str]:
    """``{module name: first docstring line}`` of the learner modules with a ``make_train``."""
    import dtwin_jax.learners as pkg

    out = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"dtwin_jax.learners.{info.name}")
        if callable(getattr(module, "make_train", None)):
            out[info.name] = (module.__doc__ or "").strip().splitlines()[0]
    return out


def _env_class(env_id: str):
    """The class registered as ``env_id`` (imported), without constructing it."""
    from dtwin_jax.envs.registry import env_class

    return env_class(env_id)


# ----------------------------------------------------------------------------- --set parsing


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``; values are Python literals (``3``, ``1e-3``,
    ``True``, ``(64, 64)``, ``'x'``) or else plain strings. RunError on a malformed or repeated
    item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RunError(f"--set {item!r} must look like key=value")
        if key in out:
            raise RunError(f"--set {key} is given twice")
        try:
            out[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key] = text.strip()
    return out


def _coerce(name: str, value, default):
    """``value`` in the kind of ``default``: int -> float for float fields, list/scalar -> tuple
    for tuple fields; anything else is left for the dataclass's own checks."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, tuple):
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return value


def _dataclass_from(cls, values: Mapping[str, Any], what: str, base=None):
    """``cls`` (or ``replace(base)``) with ``values`` coerced to its defaults' kinds; RunError
    (one line, naming ``what``) if a key is unknown or a value is refused."""
    base = cls() if base is None else base
    names = [f.name for f in dataclasses.fields(base)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise RunError(f"unknown {what} key(s) {unknown}; allowed: {names}")
    coerced = {k: _coerce(k, v, getattr(base, k)) for k, v in values.items()}
    try:
        return dataclasses.replace(base, **coerced)
    except (TypeError, ValueError) as err:
        raise RunError(f"{what}: {err}") from None


def resolve_ppo_spec(env_id: str, sets: Mapping[str, Any]):
    """Check ``sets`` against ``env_id`` and build ``(spec, env, params)``, or raise RunError.

    Keys are ``ppo.<PPOConfig field>``, ``run.<RunSettings field>``, ``env.<constructor
    argument>`` or ``params.<params field>``; a key without a prefix is taken from the one
    namespace that has it (RunError if none or several do). The env is constructed and its
    params made, so every value is validated by the same code that uses it.
    """
    from dtwin_jax.envs import make, registered_envs
    from dtwin_jax.learners.ppo import PPOConfig, action_spec

    if env_id not in registered_envs():
        raise RunError(f"{env_id!r} is not a registered env; allowed: {registered_envs()}")
    ctor = [p for p in inspect.signature(_env_class(env_id).__init__).parameters if p != "self"]
    spaces = {"ppo": [f.name for f in dataclasses.fields(PPOConfig)],
              "run": [f.name for f in dataclasses.fields(RunSettings)], "env": ctor}
    split: dict[str, dict[str, Any]] = {"ppo": {}, "run": {}, "env": {}, "params": {}}
    bare = {}
    for key, value in sets.items():
        prefix, dot, name = key.partition(".")
        if dot and prefix in split:
            split[prefix][name] = value
        elif dot:
            raise RunError(f"--set {key}: unknown prefix {prefix!r}; use ppo., run., env. or "
                           "params.")
        else:
            bare[key] = value
    for key, value in bare.items():
        homes = [ns for ns, names in spaces.items() if key in names]
        if len(homes) > 1:
            raise RunError(f"--set {key} is ambiguous ({', '.join(homes)}); write "
                           f"{homes[0]}.{key}=...")
        split[homes[0] if homes else "params"][key] = value
    unknown = sorted(set(split["env"]) - set(ctor))
    if unknown:
        raise RunError(f"unknown env key(s) {unknown} for {env_id}; constructor arguments: {ctor}")
    ppo = _dataclass_from(PPOConfig, split["ppo"], "ppo")
    run = _dataclass_from(RunSettings, split["run"], "run")
    try:
        env = make(env_id, **split["env"])
    except (TypeError, ValueError) as err:
        raise RunError(f"env {env_id}: {err}") from None
    try:
        params = env.make_params(**split["params"])
    except (TypeError, ValueError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunError(f"params of {env_id}: {msg} (other namespaces: ppo., run., env.)"
                       ) from None
    try:
        action_spec(ppo, env, params)
    except TypeError as err:
        raise RunError(f"{env_id}: {err}") from None
    spec = PPOSpec(env_id, dict(split["env"]), dict(split["params"]), ppo, run)
    return spec, env, params


def resolve_experiment(name: str, sets: Mapping[str, Any]):
    """``(module, preset, config)`` of experiment ``name`` (``-`` or ``_``) with ``sets``
    applied over ``sets["preset"]`` (default ``small``, or the first preset); RunError on an
    unknown experiment, preset, key or a refused value."""
    experiments = list_experiments()
    module_name = name.replace("-", "_")
    if module_name not in experiments:
        raise RunError(f"{name!r} is not an experiment; allowed: {sorted(experiments)}")
    module = importlib.import_module(f"dtwin_jax.experiments.{module_name}")
    sets = dict(sets)
    presets = experiments[module_name]
    preset = sets.pop("preset", "small" if "small" in presets else presets[0])
    if preset not in presets:
        raise RunError(f"preset {preset!r} of {module_name} does not exist; allowed: {presets}")
    config = _dataclass_from(type(module.PRESETS[preset]), sets, f"{module_name} config",
                             base=module.PRESETS[preset])
    return module, preset, config


# ----------------------------------------------------------------------------- checkpoints


def _leaves_for_saving(tree) -> tuple[list[np.ndarray], list[bool], list[str | None]]:
    """Host arrays of ``tree``'s leaves (typed PRNG keys as their raw data), which leaves were
    typed keys, and each key's implementation name (None for other leaves)."""
    leaves = jax.tree.leaves(tree)
    is_key = [jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) for x in leaves]
    impls = [str(jax.random.key_impl(x)) if k else None for x, k in zip(leaves, is_key,
                                                                          strict=True)]
    data = [jax.random.key_data(x) if k else x for x, k in zip(leaves, is_key, strict=True)]
    return [np.asarray(x) for x in jax.device_get(data)], is_key, impls


def _digest(arrays: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _layout(arrays: Sequence[np.ndarray]) -> list[list]:
    return [[list(a.shape), a.dtype.str] for a in arrays]


class Checkpoints:
    """The orbax ``CheckpointManager`` of a run directory's ``checkpoints/`` folder.

    :meth:`save` writes a runner state and JSON metadata as step ``step`` (synchronously, so a
    returned save is on disk); :meth:`restore` reads one back into the structure of a template
    state after checking the spec fingerprint and the layout, then verifies the digest.
    """

    def __init__(self, run_dir: str | os.PathLike, keep: int):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(run_dir).resolve() / CHECKPOINT_DIR
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """The saved steps, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, runner, meta: dict) -> None:
        """Write ``runner``'s leaves (typed keys as raw data) and ``meta`` plus step, layout and
        SHA-256 digest as checkpoint ``step``; returns once it is on disk."""
        arrays, is_key, impls = _leaves_for_saving(runner)
        meta = {**meta, "step": step, "layout": _layout(arrays), "is_key": is_key,
                "key_impls": impls, "digest": _digest(arrays)}
        state = {f"{i:06d}": a for i, a in enumerate(arrays)}
        ocp = self._ocp
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        self.manager.wait_until_finished()

    def restore(self, step: int, template, fingerprint: str):
        """``(runner, meta)`` of ``step`` shaped like ``template`` (a state or its eval_shape);
        RunError naming the step if it is unreadable, foreign or altered."""
        ocp = self._ocp
        where = f"checkpoint {self.directory / str(step)}"
        others = [s for s in self.steps() if s != step]
        hint = f"; other steps {others} are untouched (dtwin resume --step N)" if others else ""
        try:
            meta = self.manager.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))["meta"]
        except Exception as err:  # orbax raises many kinds; all mean "cannot be read"
            raise RunError(f"{where} has unreadable metadata ({_first_line(err)}){hint}") from None
        if meta.get("fingerprint") != fingerprint:
            raise RunError(f"{where} was written by a different run configuration{hint}")
        leaves, treedef = jax.tree.flatten(jax.eval_shape(lambda t: t, template))
        want = None
        if len(leaves) == len(meta.get("layout", ())) == len(meta.get("is_key", ())):
            want = [[list(jax.eval_shape(jax.random.key_data, x).shape if k else x.shape),
                     np.dtype(np.uint32 if k else x.dtype).str]
                    for x, k in zip(leaves, meta["is_key"], strict=True)]
        if want is None or want != meta["layout"]:
            raise RunError(f"{where} holds arrays of other shapes or dtypes than this run's "
                           f"state{hint}")
        abstract = {f"{i:06d}": jax.ShapeDtypeStruct(tuple(s), np.dtype(d))
                    for i, (s, d) in enumerate(meta["layout"])}
        try:
            state = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract)))["state"]
        except Exception as err:
            raise RunError(f"{where} is truncated or corrupt ({_first_line(err)}){hint}") from None
        arrays = [np.asarray(state[f"{i:06d}"]) for i in range(len(abstract))]
        if _digest(arrays) != meta["digest"]:
            raise RunError(f"{where} is corrupt (its arrays do not match their SHA-256){hint}")
        out = []
        for a, impl in zip(arrays, meta["key_impls"], strict=True):
            out.append(jnp.asarray(a) if impl is None
                       else jax.random.wrap_key_data(jnp.asarray(a), impl=impl))
        return jax.tree.unflatten(treedef, out), meta

    def set_aside_after(self, step: int, run_dir: Path) -> list[int]:
        """Move the steps after ``step`` to ``run_dir/checkpoints-set-aside/`` (not deleted), so
        that a resume from ``step`` can save again; returns the steps moved."""
        later = [s for s in self.steps() if s > step]
        if later:
            aside = run_dir / "checkpoints-set-aside"
            aside.mkdir(exist_ok=True)
            for s in later:
                shutil.move(str(self.directory / str(s)), aside / f"{s}-{int(time.time())}")
            self.manager.reload()
        return later


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


# ----------------------------------------------------------------------------- training


_COMPILED: dict[str, tuple] = {}


def _programs(spec: PPOSpec, env, params):
    """``(jitted init, jitted advance)`` of ``spec``, built once per configuration (any seed)
    in this process, so a resume or an evaluation in the same process does not compile
    again."""
    from dtwin_jax.learners.ppo import make_train_chunks

    key = dataclasses.replace(spec, run=RunSettings()).fingerprint()  # the seed is an input
    if key not in _COMPILED:
        init, advance = make_train_chunks(env, params, spec.ppo)
        _COMPILED[key] = (jax.jit(init), jax.jit(advance, static_argnums=2))
    return _COMPILED[key]


class _StopOnSigint:
    """While active (main thread only), the first SIGINT sets :attr:`requested` and the next one
    raises KeyboardInterrupt as usual."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _clean(values) -> list:
    """Floats for JSON: NaN and inf become None."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values).ravel()]


def start_ppo_run(run_dir: str | os.PathLike, spec: PPOSpec, env, params, *,
                  progress: bool = True, on_chunk: Callable[[int], None] | None = None) -> dict:
    """Create ``run_dir`` (which must not hold a run yet), write ``config.json`` and train.

    Returns the summary (also ``summary.json``). ``on_chunk(updates_done)`` is called after each
    chunk's checkpoint (a hook for tests and notebooks).
    """
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        raise RunError(f"{run_dir} already holds a run; continue it with 'dtwin resume "
                       f"{run_dir}' or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json({**spec.to_dict(), "fingerprint": spec.fingerprint(),
                "provenance": provenance(spec.to_dict())}, run_dir / CONFIG_FILE)
    return _train(run_dir, spec, env, params, None, progress, on_chunk)


def load_spec(run_dir: str | os.PathLike):
    """``(kind, data)`` of ``run_dir/config.json``; RunError if missing or unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{path} cannot be read: {_first_line(err)}") from None
    if data.get("kind") not in _KINDS:
        raise RunError(f"{path} has kind {data.get('kind')!r}; expected one of {_KINDS}")
    return data["kind"], data


def _ppo_spec_of(run_dir) -> tuple[PPOSpec, Any, Any]:
    kind, data = load_spec(run_dir)
    if kind != "ppo":
        raise RunError(f"{run_dir} is an experiment run ({data.get('experiment')}); experiments "
                       "run in one call, start it again with dtwin train")
    sets = {f"ppo.{k}": v for k, v in data["ppo"].items()}
    sets.update({f"run.{k}": v for k, v in data["run"].items()})
    sets.update({f"env.{k}": v for k, v in data["env_kwargs"].items()})
    sets.update({f"params.{k}": v for k, v in data["params"].items()})
    spec, env, params = resolve_ppo_spec(data["env_id"], sets)
    if spec.fingerprint() != data.get("fingerprint"):
        raise RunError(f"{run_dir}/{CONFIG_FILE} does not match its fingerprint (edited?)")
    return spec, env, params


def resume_ppo_run(run_dir: str | os.PathLike, step: int | None = None, *,
                   progress: bool = True, on_chunk: Callable[[int], None] | None = None) -> dict:
    """Continue the run in ``run_dir`` from checkpoint ``step`` (default: the latest; from the
    start if none was saved) to its last update. Steps after ``step`` are set aside, not
    deleted. Returns the summary. RunError (nothing changed) if the run or step is bad."""
    run_dir = Path(run_dir)
    spec, env, params = _ppo_spec_of(run_dir)
    ckpt = Checkpoints(run_dir, spec.run.keep_checkpoints)
    steps = ckpt.steps()
    if step is not None and step not in steps:
        raise RunError(f"{run_dir} has no checkpoint at step {step}; saved steps: {steps}")
    step = step if step is not None else (steps[-1] if steps else None)
    start = None
    if step is not None:
        init, _ = _programs(spec, env, params)
        template = jax.eval_shape(init, jax.random.PRNGKey(spec.run.seed))
        runner, meta = ckpt.restore(step, template, spec.fingerprint())
        ckpt.set_aside_after(step, run_dir)
        start = (step, runner, meta["history"])
    return _train(run_dir, spec, env, params, start, progress, on_chunk, ckpt)


def _train(run_dir: Path, spec: PPOSpec, env, params, start, progress, on_chunk,
           ckpt: Checkpoints | None = None) -> dict:
    from tqdm.auto import tqdm

    init, advance = _programs(spec, env, params)
    ckpt = Checkpoints(run_dir, spec.run.keep_checkpoints) if ckpt is None else ckpt
    total, chunk = spec.ppo.num_updates, spec.run.chunk_updates
    if start is None:
        step, runner, history = 0, init(jax.random.PRNGKey(spec.run.seed)), {}
    else:
        step, runner, history = start
    began = time.perf_counter()
    bar = tqdm(total=total, initial=step, desc=f"PPO {spec.env_id}", disable=not progress,
               unit="update")
    with _StopOnSigint() as stop, contextlib.closing(bar):
        while step < total and not stop.requested:
            n = min(chunk, total - step)
            runner, metrics = advance(runner, step, n)
            for name, values in jax.device_get(metrics).items():
                history.setdefault(name, []).extend(_clean(values))
            step += n
            ckpt.save(step, runner, {"fingerprint": spec.fingerprint(), "history": history})
            bar.update(n)
            bar.set_postfix({k: f"{history[k][-1]:.4g}" for k in ("episode_return", "reward")
                             if history.get(k) and history[k][-1] is not None})
            if on_chunk is not None:
                on_chunk(step)
    status = "complete" if step >= total else "interrupted"
    return _write_outputs(run_dir, spec, history, step, status, time.perf_counter() - began,
                          ckpt.steps())


def _write_outputs(run_dir: Path, spec: PPOSpec, history: dict, step: int, status: str,
                   seconds: float, steps: list[int]) -> dict:
    from dtwin_jax import plots

    names = list(history)
    with open(run_dir / "metrics.csv.tmp", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["update", *names])
        for i in range(step):
            writer.writerow([i, *("" if history[n][i] is None else history[n][i]
                                  for n in names)])
    os.replace(run_dir / "metrics.csv.tmp", run_dir / "metrics.csv")
    write_json({"update": list(range(step)), **history}, run_dir / "metrics.json")
    if step:
        curves = {n: np.asarray([np.nan if v is None else v for v in history[n]])[None]
                  for n in ("episode_return", "reward") if n in history}
        fig, axes = plots.plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5),
                                       squeeze=False)
        for ax, (name, curve) in zip(axes[0], curves.items(), strict=True):
            plots.training_curves({f"PPO on {spec.env_id}": curve}, ax=ax, ylabel=name)
        plots.save(fig, run_dir / "figures" / "training.png")
    summary = {
        "status": status, "env_id": spec.env_id, "updates_done": step,
        "num_updates": spec.ppo.num_updates, "twin_steps": step * spec.ppo.num_envs
        * spec.ppo.num_steps, "seconds_this_session": round(seconds, 2),
        "checkpoint_steps": steps,
        "last": {n: v[-1] for n, v in history.items() if v},
    }
    if status == "interrupted":
        summary["resume_with"] = f"dtwin resume {run_dir}"
    write_json(summary, run_dir / SUMMARY_FILE)
    return summary


# ----------------------------------------------------------------------------- evaluation


def evaluate_run(run_dir: str | os.PathLike, steps: int = 256, twins: int | None = None,
                 seed: int | None = None) -> dict:
    """Greedy (mode of the policy) rollouts of the latest checkpoint's network in fresh twins.

    ``twins`` defaults to the run's ``num_envs``; ``seed`` to the run's seed + 1 (twins the
    training never saw). Writes and returns ``eval.json``: mean reward per live agent-step,
    episodes completed and their mean return (per twin, as in training), next to the same
    numbers for the initial (untrained) network of the run's seed.
    """
    from dtwin_jax.learners import common
    from dtwin_jax.learners.nets import ActorCritic, policy_distribution
    from dtwin_jax.learners.ppo import action_spec

    run_dir = Path(run_dir)
    spec, env, params = _ppo_spec_of(run_dir)
    check_int("steps", steps, lo=1)
    twins = spec.ppo.num_envs if twins is None else check_int("twins", twins, lo=1)
    seed = spec.run.seed + 1 if seed is None else check_int("seed", seed, lo=0, hi=2**32 - 1)
    ckpt = Checkpoints(run_dir, spec.run.keep_checkpoints)
    if not ckpt.steps():
        raise RunError(f"{run_dir} has no checkpoint yet; train or resume it first")
    init, _ = _programs(spec, env, params)
    first = init(jax.random.PRNGKey(spec.run.seed))
    trained, meta = ckpt.restore(ckpt.steps()[-1], first, spec.fingerprint())
    vec = common.make_vec_env(env, twins)
    batch = vec.inner.batch_params(params)
    one = jax.tree.map(lambda x: x[0], batch)
    aspec = action_spec(spec.ppo, env, one)
    network = ActorCritic(hidden_sizes=spec.ppo.hidden_sizes, activation=spec.ppo.activation,
                          spec=aspec)

    @jax.jit
    def rollout(net_params, key):
        k_reset, k_steps = jax.random.split(key)

        def policy(k, view, first, hidden):
            head, _ = network.apply(net_params, view.features)
            raw = policy_distribution(aspec, head, view.action_mask).mode()
            return raw, policy_distribution(aspec, head, view.action_mask).env_action(raw), {}, \
                hidden

        def body(col, k):
            col, (traj, stats) = common.env_step(vec, batch, policy, col, k, (), frozenset())
            return col, (common.masked_mean(traj.reward, traj.view.live), stats)

        col = common.init_collector(vec, k_reset, batch)
        _, (rewards, stats) = jax.lax.scan(body, col, jax.random.split(k_steps, steps))
        episodes, ret = common.episode_stats(stats, jnp.float32(jnp.nan))
        return rewards.mean(), episodes, ret

    key = jax.random.PRNGKey(seed)
    out = {}
    for name, state in (("trained", trained), ("initial", first)):
        reward, episodes, ret = jax.device_get(rollout(state.train_state.params, key))
        out[name] = {"mean_reward": _clean([reward])[0], "episodes": int(episodes),
                     "mean_episode_return": _clean([ret])[0]}
    result = {"env_id": spec.env_id, "checkpoint_step": meta["step"], "twins": twins,
              "steps": steps, "seed": seed, "policy": "greedy (distribution mode)", **out}
    write_json(result, run_dir / "eval.json")
    return result


# ----------------------------------------------------------------------------- experiments


def run_experiment(run_dir: str | os.PathLike, module, preset: str, config) -> dict:
    """Run ``module.run(config)`` and write ``config.json``, ``results.json``, the module's
    figure (``plot_results(results, path)`` if it has one) and ``summary.json`` (its
    ``headline`` if any). Returns the summary."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        raise RunError(f"{run_dir} already holds a run; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    name = module.__name__.rsplit(".", 1)[-1]
    as_dict = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    write_json({"kind": "experiment", "experiment": name, "preset": preset,
                "config": json.loads(json.dumps(as_dict, default=str)),
                "provenance": provenance(as_dict)}, run_dir / CONFIG_FILE)
    began = time.perf_counter()
    results = module.run(config)
    write_json(results, run_dir / "results.json")
    figures = []
    if callable(getattr(module, "plot_results", None)):
        path = run_dir / "figures" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        module.plot_results(results, str(path))
        figures.append(str(path))
    summary = {"status": "complete", "experiment": name, "preset": preset,
               "seconds": round(time.perf_counter() - began, 2), "figures": figures,
               "headline": results.get("headline")}
    write_json(summary, run_dir / SUMMARY_FILE)
    return summary
