"""`RayEngine`: the partitioned stages as Ray tasks, on a local cluster started here (the default) or
on a running cluster (`engine.address`). Partitions and shuffle pieces live in Ray's object store
(shared memory, spilled to disk when full), so a stage's output reaches the next stage's tasks
without passing through the driver.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit_agent.config import EngineConfig
from audit_agent.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class RayEngine:
    """Ray tasks; each remote function is registered once per run."""

    name = "ray"

    def __init__(self, cfg: EngineConfig) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--engine ray needs Ray: pip install 'audit-agent[engine]'") from None
        self._ray = ray
        self._remote: dict[Callable[..., Any], Any] = {}
        self._started = False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "ignore_reinit_error": True}
        if cfg.ship_code:
            kwargs["runtime_env"] = {"py_modules": [str(_PACKAGE_DIR)]}
        if cfg.address:
            kwargs["address"] = cfg.address
        else:
            kwargs["num_cpus"] = cfg.num_cpus or os.cpu_count() or 1
            if cfg.object_store_mb:
                kwargs["object_store_memory"] = cfg.object_store_mb * 2**20
            if cfg.spill_dir:
                kwargs["_temp_dir"] = str(Path(cfg.spill_dir).resolve())
            # one numeric thread per task: tasks, not BLAS threads, use the cores
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        if not ray.is_initialized():
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {cfg.address}: {str(exc)[:200]}") from None
            self._started = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def put(self, value: Any) -> Any:
        return self._ray.put(value)

    def submit(self, fn: Callable[..., Any], *args: Any, outputs: int = 1) -> Any:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(fn)
        if outputs == 1:
            return remote.remote(*args)
        return list(remote.options(num_returns=outputs).remote(*args))

    def get(self, ref: Any) -> Any:
        return self._ray.get(ref)

    def wait(self, refs: list[Any]) -> None:
        if refs:
            self._ray.wait(refs, num_returns=len(refs), timeout=None, fetch_local=False)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False
