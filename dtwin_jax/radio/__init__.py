"""Radio physics, no state: pathloss models, fading and shadowing, link budget and SINR."""

from dtwin_jax.radio.fading import *  # noqa: F403
from dtwin_jax.radio.fading import __all__ as _fading_all
from dtwin_jax.radio.link import *  # noqa: F403
from dtwin_jax.radio.link import __all__ as _link_all
from dtwin_jax.radio.pathloss import *  # noqa: F403
from dtwin_jax.radio.pathloss import __all__ as _pathloss_all
from dtwin_jax.radio.periodic_shadowing import *  # noqa: F403
from dtwin_jax.radio.periodic_shadowing import __all__ as _tile_all

__all__ = [*_pathloss_all, *_fading_all, *_tile_all, *_link_all]
