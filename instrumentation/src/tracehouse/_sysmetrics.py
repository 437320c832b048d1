"""System metrics of a run, sampled on a background thread and logged as `system.*` metrics.

CPU and memory come from psutil (`pip install 'tracehouse[system]'`), GPU utilisation and
memory from NVIDIA's management library (`nvidia-ml-py`) when it is installed and a GPU is
present. Whatever is missing is silently skipped. TRACEHOUSE_SYSTEM_METRICS_INTERVAL sets the
period in seconds (default 10; 0 turns sampling off).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

DEFAULT_INTERVAL_S = 10.0


def interval_s() -> float:
    raw = os.environ.get("TRACEHOUSE_SYSTEM_METRICS_INTERVAL", "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


class _Gpus:
    def __init__(self) -> None:
        self.handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no library, no driver or no GPU
            self.handles = []

    def sample(self, out: dict[str, float]) -> None:
        for i, h in enumerate(self.handles):
            try:
                util = self.nvml.nvmlDeviceGetUtilizationRates(h)
                mem = self.nvml.nvmlDeviceGetMemoryInfo(h)
            except Exception:
                continue
            out[f"system.gpu.{i}.utilization_percent"] = float(util.gpu)
            out[f"system.gpu.{i}.memory_used_mb"] = mem.used / 2**20
            out[f"system.gpu.{i}.memory_percent"] = 100.0 * mem.used / mem.total if mem.total else 0.0


def sample_once(psutil: Any, process: Any, gpus: _Gpus) -> dict[str, float]:
    out: dict[str, float] = {}
    if psutil is not None:
        out["system.cpu_percent"] = psutil.cpu_percent(interval=None)
        vm = psutil.virtual_memory()
        out["system.memory_percent"] = vm.percent
        out["system.memory_used_mb"] = (vm.total - vm.available) / 2**20
        with contextlib.suppress(Exception):
            out["system.process_rss_mb"] = process.memory_info().rss / 2**20
    gpus.sample(out)
    return out


class Sampler:
    """Calls `log(metrics, step)` every `interval` seconds until stopped (and once at stop)."""

    def __init__(self, log: Callable[[dict[str, float], int], None], interval: float) -> None:
        self.log = log
        self.interval = interval
        self._stop = threading.Event()
        self._step = 0
        self._thread = threading.Thread(target=self._loop, name="tracehouse-sysmetrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            import psutil

            process = psutil.Process()
            psutil.cpu_percent(interval=None)  # the first call only sets the reference point
        except ImportError:
            psutil = process = None
        gpus = _Gpus()
        if psutil is None and not gpus.handles:
            return
        while not self._stop.wait(self.interval):
            self._emit(psutil, process, gpus)
        self._emit(psutil, process, gpus)

    def _emit(self, psutil: Any, process: Any, gpus: _Gpus) -> None:
        values = sample_once(psutil, process, gpus)
        if values:
            self.log(values, self._step)
            self._step += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
