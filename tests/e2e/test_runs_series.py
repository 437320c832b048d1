"""`GET /api/v1/runs/{id}/series`: one metric for a chart, reduced on the server (M4: first,
last, min and max per step bucket) so a 100,000-point history stays small without losing its
peaks, and at full resolution once a zoomed range is small enough. Real chDB behind a real
collector; the run is logged by the SDK."""

from __future__ import annotations

import math

import pytest
import tracehouse
from helpers import run_sdk_to, unique, wait_for

N = 100_000
SPIKE_STEP, SPIKE = 61_234, 50.0
DIP_STEP, DIP = 8_000, -20.0


def value(step: int) -> float:
    if step == SPIKE_STEP:
        return SPIKE
    if step == DIP_STEP:
        return DIP
    return round(math.sin(step / 500) + (step % 7) / 100, 6)


@pytest.fixture(scope="module")
def long_run(collector, tmp_path_factory) -> str:
    # The run ends (inner) before the SDK's flush (outer).
    spool = tmp_path_factory.mktemp("spool")
    with (
        run_sdk_to(collector.http_url, spool),
        tracehouse.run(experiment=unique("series"), name="long") as run,
    ):
        for step in range(N):
            run.log_metric("loss", value(step), step=step)
        run.log_metric("loss", value(99), step=99)  # a repeated step: counted once
        run.log_metric("single", 3.5, step=7)
    url = f"{collector.http_url}/api/v1/runs/{run.id}/series"
    assert wait_for(
        lambda: collector.session.get(url, params={"key": "loss"}).json().get("total") == N, timeout=60
    )
    return run.id


def get(collector, run_id: str, status: int = 200, **params):
    resp = collector.session.get(
        f"{collector.http_url}/api/v1/runs/{run_id}/series", params=params, timeout=30
    )
    assert resp.status_code == status, resp.text
    return resp.json()


def test_reduction_keeps_every_bucket_extreme(collector, long_run):
    out = get(collector, long_run, key="loss", max_points=1000)
    assert out["downsampled"] is True and out["total"] == N
    points = out["points"]
    assert len(points) <= 1000
    steps = [s for s, _ in points]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == N - 1
    assert all(v == value(s) for s, v in points)  # real points, never averages
    assert [SPIKE_STEP, SPIKE] in points and [DIP_STEP, DIP] in points
    # Every bucket's min and max are among the points (width = ceil(N / 250)).
    width = -(-N // 250)
    by_bucket: dict[int, list[float]] = {}
    for s, v in points:
        by_bucket.setdefault(s // width, []).append(v)
    for b in range(0, N // width):
        raw = [value(s) for s in range(b * width, min(N, (b + 1) * width))]
        assert min(by_bucket[b]) == min(raw) and max(by_bucket[b]) == max(raw)


def test_zoomed_range_is_full_resolution(collector, long_run):
    out = get(collector, long_run, key="loss", max_points=1000, min_step=61_000, max_step=61_499)
    assert out["downsampled"] is False and out["total"] == 500
    assert out["points"] == [[s, value(s)] for s in range(61_000, 61_500)]
    # A range past the end is cut to the data.
    out = get(collector, long_run, key="loss", min_step=N - 10, max_step=N + 1000)
    assert out["max_step"] == N - 1 and len(out["points"]) == 10


def test_small_and_missing_series(collector, long_run):
    assert get(collector, long_run, key="single")["points"] == [[7, 3.5]]
    out = get(collector, long_run, key="no-such-metric")
    assert out["points"] == [] and out["total"] == 0
    assert "between" in get(collector, long_run, 400, key="loss", max_points=3)["error"]
    assert "key" in get(collector, long_run, 400)["error"]
    assert "integers" in get(collector, long_run, 400, key="loss", min_step="x")["error"]
    assert get(collector, "ffffff", 404, key="loss")["error"]
