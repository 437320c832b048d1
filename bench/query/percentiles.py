"""How far the rollup's sketch percentiles lie from the exact (interpolated) ones, by group size.

The measurement behind aggregates.EXACT_MAX_COUNT: for each group size n, `--trials` groups of
log-normal latencies go through ClickHouse's quantilesDD (the rollup's sketch, at its 1%
relative accuracy) and numpy's default percentile; it prints the median, 90th percentile and
maximum, over the trials, of the largest relative difference among p50/p90/p95/p99.

    python -m bench.query.percentiles
    python -m bench.query.percentiles --trials 100 --sizes 100,500,1000
"""

from __future__ import annotations

import argparse

import numpy as np
from chdb import session
from tracehouse_collector.store.schema import ROLLUP_LEVELS, ROLLUP_RELATIVE_ERROR

SIZES = "1,2,3,5,8,10,20,30,50,75,100,150,200,300,500,1000,2000,5000"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.query.percentiles", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="groups per size (default 40)")
    parser.add_argument("--sizes", default=SIZES, help=f"group sizes, comma-separated (default {SIZES})")
    parser.add_argument("--sigma", type=float, default=0.8, help="log-normal shape of the latencies")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    db = session.Session()
    levels = ", ".join(map(str, ROLLUP_LEVELS))
    print(f"{'calls':>6}  {'median':>7}  {'p90':>7}  {'max':>7}   relative difference, sketch vs exact")
    for n in (int(s) for s in args.sizes.split(",")):
        worst = []
        for _ in range(args.trials):
            values = rng.lognormal(6, args.sigma, n)
            array = ",".join(f"{v:.6f}" for v in values)
            out = (
                db.query(
                    f"SELECT quantilesDD({ROLLUP_RELATIVE_ERROR}, {levels})(x) FROM (SELECT arrayJoin([{array}]) AS x)",
                    "TabSeparated",
                )
                .bytes()
                .decode()
            )
            sketch = [float(v) for v in out.strip().strip("[]").split(",")]
            exact = np.percentile(values, [q * 100 for q in ROLLUP_LEVELS])
            worst.append(max(abs(s - e) / e for s, e in zip(sketch, exact, strict=True)))
        w = np.array(worst)
        print(f"{n:>6}  {np.median(w):>7.2%}  {np.percentile(w, 90):>7.2%}  {w.max():>7.2%}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
