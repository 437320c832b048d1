"""The demo's training runs: params, metric curves, CSV and PNG artifacts, and a `.luml` model of a
small scikit-learn classifier."""

from __future__ import annotations

import json
import math
import random
import struct
import zlib
from pathlib import Path
from typing import Any

from tracehouse_collector.demo.summary import Summary

# -- training runs ------------------------------------------------------------------------------


def training_runs(rng: random.Random, workdir: Path, summary: Summary) -> None:
    import tracehouse

    configs: list[dict[str, Any]] = [
        {"learning_rate": 0.1, "batch_size": 32, "optimizer": "sgd", "epochs": 10},
        {"learning_rate": 0.03, "batch_size": 64, "optimizer": "adam", "epochs": 10},
        {"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam", "epochs": 10},
    ]
    steps = 300
    best: tuple[float, Any] | None = None
    for idx, params in enumerate(configs):
        with tracehouse.run(
            "demo-classifier",
            name=f"{params['optimizer']}-lr{params['learning_rate']}",
            params=params,
            tags={"demo": "true"},
        ) as run:
            speed = 0.004 + 0.01 * params["learning_rate"] * (1 + idx)
            floor = 0.08 + 0.05 * rng.random()
            rows = ["step,loss,accuracy"]
            losses = []
            for step in range(steps):
                loss = floor + 2.2 * math.exp(-speed * step * 3) + rng.gauss(0, 0.02)
                losses.append(loss)
                acc = min(0.99, 1 - loss / 2.4 + rng.gauss(0, 0.01))
                run.log_metrics({"train/loss": round(loss, 5), "train/accuracy": round(acc, 5)}, step=step)
                if step % 30 == 29:
                    run.log_metric("val/loss", round(loss * 1.1 + rng.gauss(0, 0.01), 5), step=step)
                    rows.append(f"{step},{loss:.5f},{acc:.5f}")
                summary.metric_points += 2
            summary.metric_points += steps // 30
            csv_path = workdir / f"curve-{idx}.csv"
            csv_path.write_text("\n".join(rows) + "\n")
            run.log_artifact(csv_path, name="validation_curve.csv")
            png = workdir / f"loss-{idx}.png"
            png.write_bytes(_curve_png(losses))
            run.log_artifact(png, name="loss_curve.png")
            summary.artifacts += 1
            notes = workdir / f"notes-{idx}.txt"
            notes.write_text(f"Run {run.name}: {json.dumps(params)}\nfinal loss {loss:.4f}\n")
            run.log_artifact(notes, name="notes.txt")
            summary.artifacts += 2
            summary.runs += 1
            if best is None or loss < best[0]:
                best = (loss, run.id)
    _log_model(rng, workdir, summary)


def _curve_png(values: list[float], width: int = 240, height: int = 120) -> bytes:
    """A small line chart of `values` as a PNG (grey-scale, drawn pixel by pixel: the demo needs
    no imaging library)."""
    lo, hi = min(values), max(values)
    pixels = [[255] * width for _ in range(height)]
    previous = None
    for i, v in enumerate(values):
        x = round(i * (width - 1) / max(1, len(values) - 1))
        y = round((height - 1) * (1 - (v - lo) / ((hi - lo) or 1)))
        ys = range(min(y, previous), max(y, previous) + 1) if previous is not None else (y,)
        for yy in ys:  # a vertical run joins this point to the last one
            pixels[yy][x] = 40
        previous = y
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter type 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey-scale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _log_model(rng: random.Random, workdir: Path, summary: Summary) -> None:
    """A tiny scikit-learn classifier packaged as a `.luml` model, in a run of its own."""
    try:
        import fnnx  # noqa: F401 - the .luml packaging needs it
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        summary.notes.append(f"skipped the .luml model: {exc.name} is not installed")
        return
    import tracehouse

    seed = rng.randrange(2**31)
    data_rng = random.Random(seed)
    xs = [[data_rng.gauss(0, 1), data_rng.gauss(0, 1), data_rng.gauss(0, 1)] for _ in range(240)]
    ys = [int(x[0] + 0.5 * x[1] - 0.3 * x[2] + data_rng.gauss(0, 0.3) > 0) for x in xs]
    params = {"model": "LogisticRegression", "C": 1.0, "features": 3, "seed": seed}
    with tracehouse.run("demo-classifier", name="logreg-final", params=params, tags={"demo": "true"}) as run:
        model = LogisticRegression(C=1.0).fit(xs[:180], ys[:180])
        run.log_metric("train/accuracy", float(model.score(xs[:180], ys[:180])))
        summary.runs += 1
        try:
            run.log_model(
                model, "demo-classifier", inputs=xs[:5], eval_data=(xs[180:], ys[180:]), metric="accuracy"
            )
        except (ImportError, ValueError, RuntimeError, OSError) as exc:  # packaging is optional for the demo
            summary.notes.append(f"skipped the .luml model: {exc}")
            return
        summary.models += 1
        summary.artifacts += 1
