import numpy as np
import pytest

from speechinstruct.units import expand, format_units, parse_units, reduce


def test_reduce_and_expand_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        frames = np.repeat(rng.integers(0, 5, 30), rng.integers(1, 4, 30))
        units, durations = reduce(frames)
        assert (units[1:] != units[:-1]).all()
        assert durations.sum() == len(frames) and (durations >= 1).all()
        np.testing.assert_array_equal(expand(units, durations), frames)


def test_reduce_examples():
    units, durations = reduce([7, 7, 7, 3, 3, 7, 1])
    assert units.tolist() == [7, 3, 7, 1] and durations.tolist() == [3, 2, 1, 1]
    units, durations = reduce([])
    assert units.tolist() == [] and durations.tolist() == []


def test_format_and_parse():
    assert format_units([661, 588, 0]) == "<sosp><661><588><0><eosp>"
    assert parse_units("say <sosp><661><588><eosp> now") == [661, 588]
    assert parse_units(format_units([])) == []
    with pytest.raises(ValueError, match="no <sosp>"):
        parse_units("<661><588>")
