"""The suite's expensive fixtures (notebooks, multi-process runs, sweeps, the 8-device jobs) are
built once because their tests share an ``xdist_group`` and ``--dist loadgroup`` sends a group to
one worker. pytest-xdist does that by suffixing the test's node id with ``@group``; if a pytest or
xdist upgrade stops it (pytest 9 with xdist 3.8 did), every group is split over the workers and
its fixtures are built twice, silently. This test fails instead."""

import pytest


@pytest.mark.xdist_group("canary")
def test_a_grouped_test_carries_its_group_under_loadgroup(request):
    if getattr(request.config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        assert request.node.nodeid.endswith("@canary"), request.node.nodeid
    else:  # without xdist's loadgroup the mark is only a mark
        assert request.node.get_closest_marker("xdist_group").args == ("canary",)
