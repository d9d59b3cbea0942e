"""``make(env_id, **kwargs)``: build a registered environment by name."""

from __future__ import annotations

import importlib

from dtwin_jax.envs.base import Environment

_REGISTRY: dict[str, str] = {}


def register(env_id: str, entry_point: str) -> None:
    """Register ``env_id`` -> ``"package.module:ClassName"`` (imported lazily by :func:`make`)."""
    if ":" not in entry_point:
        raise ValueError(f"entry_point={entry_point!r} must look like 'package.module:ClassName'")
    _REGISTRY[env_id] = entry_point


def registered_envs() -> list[str]:
    """Ids accepted by :func:`make`, sorted."""
    return sorted(_REGISTRY)


def unregister(env_id: str) -> None:
    """Remove ``env_id`` from the registry (no error if it is not there)."""
    _REGISTRY.pop(env_id, None)


def env_class(env_id: str) -> type[Environment]:
    """The class registered as ``env_id``, imported but not constructed."""
    if env_id not in _REGISTRY:
        raise ValueError(f"env_id={env_id!r} is not registered; allowed: {registered_envs()}")
    module_name, class_name = _REGISTRY[env_id].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make(env_id: str, **kwargs) -> Environment:
    """Construct the environment registered as ``env_id`` with constructor ``kwargs``."""
    return env_class(env_id)(**kwargs)


register("association-v0", "dtwin_jax.envs.association:AssociationEnv")
register("edge-retrain-v0", "dtwin_jax.envs.edge_retrain:EdgeRetrainEnv")
register("dnt-sync-v0", "dtwin_jax.envs.dnt_sync:DntSyncEnv")
register("slicing-v0", "dtwin_jax.envs.slicing:SlicingEnv")
