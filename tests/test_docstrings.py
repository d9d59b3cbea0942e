"""Every public function, class, method and property of ``dtwin_jax`` has a docstring (issue 13).

Walks every module of the package with ``pkgutil.walk_packages`` (plus the stand-alone
``dtwin_jax.data.osm.convert_pbf`` script, which lives outside any package; it is skipped if
it fails to import). In each module it checks every public (no leading underscore) function
and class *defined there* (``obj.__module__ == module.__name__``; jitted / wrapped functions
are unwrapped), and every public method (static and class methods included) and property in
such a class's own ``__dict__``. A method counts as documented when ``inspect.getdoc`` finds a
docstring, so an override of a documented base-class method (``Environment.step_env``) is
fine; a property counts when it has its own ``__doc__`` or a base class documents the same
name. The one exemption: ``setup`` of a Flax ``nn.Module`` subclass (Flax's hook for declaring
submodules, never called by users). All offenders are collected and listed in the failure.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

import flax.linen as nn

import dtwin_jax

# not in a package (``dtwin_jax/data`` has no ``__init__``), so walk_packages does not find it
EXTRA_MODULES = ("dtwin_jax.data.osm.convert_pbf",)
OPTIONAL_MODULES = {"dtwin_jax.data.osm.convert_pbf"}


def _modules():
    """Every importable module of ``dtwin_jax``; only the optional ones may fail to import."""
    names = [dtwin_jax.__name__]
    names += [
        info.name
        for info in pkgutil.walk_packages(dtwin_jax.__path__, prefix=dtwin_jax.__name__ + ".")
    ]
    names += [n for n in EXTRA_MODULES if n not in names]
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            if name not in OPTIONAL_MODULES:
                raise
    return modules


def _unwrap(obj):
    """The plain function behind a ``jax.jit`` / ``functools.wraps`` wrapper, else ``obj``."""
    try:
        return inspect.unwrap(obj)
    except (ValueError, TypeError):
        return obj


def _has_doc(doc) -> bool:
    return bool(doc and doc.strip())


def _property_documented(cls, name: str, prop) -> bool:
    """The property's own docstring, or the same name's docstring on a base class."""
    if _has_doc(prop.__doc__):
        return True
    for base in cls.__mro__[1:]:
        attr = base.__dict__.get(name)
        if attr is not None and _has_doc(getattr(attr, "__doc__", None)):
            return True
    return False


def _class_offenders(cls, qualname: str) -> list[str]:
    """Public methods and properties in ``cls.__dict__`` without a docstring."""
    offenders = []
    is_flax_module = issubclass(cls, nn.Module)
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if is_flax_module and name == "setup":
            continue
        if isinstance(attr, property | functools.cached_property):
            if not _property_documented(cls, name, attr):
                offenders.append(f"{qualname}.{name} (property)")
            continue
        if isinstance(attr, staticmethod | classmethod):
            attr = attr.__func__
        fn = _unwrap(attr)
        if not inspect.isfunction(fn):
            continue
        # getdoc on the class attribute finds a documented base-class method of the same name
        if not _has_doc(inspect.getdoc(getattr(cls, name, attr))) and not _has_doc(fn.__doc__):
            offenders.append(f"{qualname}.{name}")
    return offenders


def _offenders() -> list[str]:
    offenders = []
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            qualname = f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                if not _has_doc(obj.__doc__):
                    offenders.append(f"{qualname} (class)")
                offenders += _class_offenders(obj, qualname)
            elif inspect.isfunction(_unwrap(obj)):
                if not _has_doc(getattr(obj, "__doc__", None)) and not _has_doc(
                    _unwrap(obj).__doc__
                ):
                    offenders.append(qualname)
    return offenders


def test_every_public_function_has_a_docstring():
    offenders = _offenders()
    for offender in offenders:
        print(offender)
    assert not offenders, f"{len(offenders)} public names without a docstring:\n" + "\n".join(
        offenders
    )
