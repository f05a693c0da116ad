"""What the bench scripts and ``run_all.py`` share: fresh-process ("cold")
timing, process memory and I/O, and the JSON records.  Standard library only:
a worker imports this before its clock starts.

A record is one tool run, one JSON object a line (JSON Lines) in the file
given by a script's ``--records PATH``::

    {"schema": "prefcurate-bench-record/1", "kind": "tool",
     "bench": "decontaminate", "tool": "prefcurate-t2",
     "label": "prefcurate, 2 threads", "role": "prefcurate" | "peer" | "reference",
     "baseline": true,            # the row the bench's ratios are taken against
     "compare_to": null,          # or the tool id this row's ratio is against
     "status": "ok" | "missing" | "failed" | "skipped", "error": null,
     "mode": "cold" | "first-call" | "warm",
     "seconds": 0.71,             # mode "cold": a fresh process, the tool's imports
                                  # and its first call inside the clock
     "warm_seconds": [0.14, ...], # later calls in the same process (or [])
     "threads": 2, "rows": 80000,
     "peak_rss_mb": 250.0,        # the process's peak RSS over the timed part (VmHWM)
     "loaded_rss_mb": 120.0,      # its RSS with the data loaded, before the clock
     "metrics": {...},            # the bench's own figures (flagged, recall, ...)
     "notes": "..."}

plus ``{"kind": "workload", "bench", "workload": {...}}`` (one per bench run)
and ``{"kind": "check", "bench", "name", "ok", "detail"}`` (exactness checks).

Peak RSS is read in the child itself (``VmHWM`` of /proc/self/status, reset
with /proc/self/clear_refs before the clock): ``wait4``'s ``ru_maxrss`` of a
child carries the parent's high-water mark over ``exec``, so a driver holding
the corpus would show its own peak as the tool's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECORD_SCHEMA = "prefcurate-bench-record/1"

#: modules a cold worker must not have imported before its clock starts
HEAVY = (
    "numpy",
    "pyarrow",
    "pandas",
    "polars",
    "prefcurate",
    "sklearn",
    "scipy",
    "datasketch",
    "rensa",
    "datasets",
    "ray",
    "torch",
)

#: how each bench's peers are installed (for the "missing" records)
INSTALL = {
    "rensa": "pip install rensa==0.5.0",
    "datasketch": "pip install 'datasketch>=2.0'",
    "polars": "pip install polars",
    "pandas": "pip install pandas",
    "sklearn": "pip install scikit-learn",
    "datasets": "pip install datasets",
    "ray": "pip install 'ray[data]'",
}


# ---------------------------------------------------------------- in the worker


def assert_cold(allow: tuple[str, ...] = ()) -> None:
    """Fail unless none of the heavy modules (but ``allow``) is imported yet."""
    loaded = [m for m in HEAVY if m in sys.modules and m not in allow]
    if loaded:
        raise RuntimeError(f"not a cold start: {loaded} imported before the clock")


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else float("nan")


def peak_rss_mb() -> float:
    """This process's peak RSS (since the last :func:`reset_peak`), with the
    largest waited-for child's if larger (a tool's own worker processes)."""
    import resource

    kb = _status_kb("VmHWM")
    own = kb / 1024 if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return max(own, kids)


def reset_peak() -> None:
    """Start the peak RSS afresh (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def proc_io() -> dict[str, int]:
    """/proc/self/io of this process (all its threads, live and ended)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/self/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k.strip()] = int(v)
    return out


class Cold:
    """The fresh-process clock::

    data = load()                      # untimed: stands for the user's data
    with Cold() as c:                  # checks no heavy module is imported yet
        import prefcurate              # inside the clock
        res = prefcurate.decontaminate(data, bench)
    c.seconds, c.loaded_rss_mb
    """

    def __init__(self, allow: tuple[str, ...] = ()) -> None:
        self.allow = allow
        self.seconds = float("nan")
        self.loaded_rss_mb = float("nan")

    def __enter__(self) -> Cold:
        import gc

        gc.collect()
        assert_cold(self.allow)
        self.loaded_rss_mb = rss_mb()
        reset_peak()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def warm(fn: Any, repeat: int) -> tuple[list[float], Any]:
    """``repeat`` more calls of ``fn()``: (seconds of each, the last result)."""
    secs, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t0)
    return secs, out


# ---------------------------------------------------------------- in the driver


def run_child(cmd: list[str], *, env: dict | None = None, quiet: bool = True) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process: its exit code (``rc``), wall seconds, the
    bytes it wrote to storage as ``wait4`` counts them (``ru_oublock`` x 512,
    what ``/usr/bin/time -v`` prints as "File system outputs"), its stderr tail
    and, when it failed, ``error``: the exit code and its last stderr line."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL if quiet else None, stderr=err if quiet else None, env=env
        )
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-3000:] if quiet else ""
        last = next((x.strip() for x in reversed(tail.splitlines()) if x.strip()), "")
        return {
            "rc": rc,
            "wall_s": wall,
            "fs_output_bytes": ru.ru_oublock * 512,
            "stderr": tail,
            # the record's error: the exit code and the exception's line
            "error": None if rc == 0 else f"exit {rc}" + (f": {last[-300:]}" if last else ""),
        }


def missing(module: str) -> str | None:
    """None when ``module`` imports here, else how to install it."""
    if importlib.util.find_spec(module) is not None:
        return None
    return f"{module} is not installed in {sys.executable} ({INSTALL.get(module, 'pip install ' + module)})"


def record(bench: str, tool: str, label: str, role: str, **fields: Any) -> dict[str, Any]:
    """A tool record with every field present (see the module docstring)."""
    r: dict[str, Any] = {
        "schema": RECORD_SCHEMA,
        "kind": "tool",
        "bench": bench,
        "tool": tool,
        "label": label,
        "role": role,
        "baseline": False,
        "compare_to": None,
        "status": "ok",
        "error": None,
        "mode": "cold",
        "seconds": None,
        "warm_seconds": [],
        "threads": None,
        "rows": None,
        "peak_rss_mb": None,
        "loaded_rss_mb": None,
        "metrics": {},
        "notes": None,
    }
    r.update(fields)
    return r


class Records:
    """Appends records to ``path`` (JSON Lines); a no-op when ``path`` is None."""

    def __init__(self, path: str | os.PathLike | None, bench: str) -> None:
        self.path = Path(path) if path else None
        self.bench = bench

    def _write(self, rec: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, default=_plain) + "\n")

    def tool(self, tool: str, label: str, role: str, **fields: Any) -> None:
        self._write(record(self.bench, tool, label, role, **fields))

    def workload(self, **workload: Any) -> None:
        self._write({"schema": RECORD_SCHEMA, "kind": "workload", "bench": self.bench, "workload": workload})

    def check(self, name: str, ok: bool | None, detail: str | None = None) -> None:
        self._write(
            {
                "schema": RECORD_SCHEMA,
                "kind": "check",
                "bench": self.bench,
                "name": name,
                "ok": None if ok is None else bool(ok),
                "detail": detail,
            }
        )


def _plain(x: Any) -> Any:
    """numpy scalars and paths in records."""
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def stamp_ok(work: Path, params: dict[str, Any]) -> bool:
    """Whether ``work`` holds data generated with ``params`` (see :func:`stamp`)."""
    f = work / "generated.json"
    try:
        return json.loads(f.read_text()) == json.loads(json.dumps(params, sort_keys=True))
    except (OSError, ValueError):
        return False


def stamp(work: Path, params: dict[str, Any]) -> None:
    """Mark ``work`` as holding data generated with ``params``: a later run with
    the same ``--work`` and parameters reuses it."""
    (work / "generated.json").write_text(json.dumps(params, sort_keys=True))
