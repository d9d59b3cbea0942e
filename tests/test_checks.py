"""The shared argument checks of dtwin_jax._checks that configs use for bools and int tuples."""

import numpy as np
import pytest

from dtwin_jax._checks import check_bool, check_int_tuple


def test_check_bool_refuses_ints_and_numpy_bools():
    assert check_bool("double", True) is True and check_bool("double", False) is False
    for bad in (1, 0, np.bool_(True), "yes"):
        with pytest.raises(TypeError, match="double must be a bool"):
            check_bool("double", bad)


def test_check_int_tuple_names_the_entry():
    widths = check_int_tuple("hidden_sizes", [np.int64(8), 4], lo=1)
    assert widths == (8, 4) and all(type(w) is int for w in widths)
    assert check_int_tuple("hidden_sizes", ()) == ()
    with pytest.raises(TypeError, match=r"hidden_sizes\[1\] must be an int"):
        check_int_tuple("hidden_sizes", (8, 2.5), lo=1)
    with pytest.raises(ValueError, match=r"hidden_sizes\[0\]=0 is out of range"):
        check_int_tuple("hidden_sizes", (0,), lo=1)
