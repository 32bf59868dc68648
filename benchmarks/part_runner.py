"""Measurement parts run one after another, each in its own process under its own time limit.

Why processes: a CUDA error is sticky (every later CUDA call of that process fails), and a
signal cannot interrupt a native CUDA or gloo call, so a part that breaks or hangs must be a
process group the runner can kill. After every part the runner rewrites ``NAME.json`` and
``NAME.md`` with everything measured so far; ``NAME.log`` holds every part's output. A run
cut short therefore still leaves its first parts behind.

A part is a function ``fn(ctx)`` in a Python file, named ``"path/to/file.py:function"``. It
records figures as it goes with ``ctx.record(key, value)``: each one is written to disk at
once, so a part killed at its limit keeps what it had measured. Whatever it returns (a dict)
is recorded too. ``ctx.settings`` is the JSON the runner hands every part.

    python benchmarks/part_runner.py child FILE.py:FUNCTION SETTINGS.json RESULT.json   # one part (the runner's call)
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from evaluation.files import write_atomically
from evaluation.workers import describe_exit

KILL_GRACE_S = 5.0  # after SIGTERM at the limit, before SIGKILL
CLEANUP_LIMIT_S = 30.0


@dataclass(frozen=True)
class Part:
    name: str
    target: str  # "path/to/file.py:function"
    limit_s: float  # wall-clock limit of the part's process group
    cleanup: str | None = None  # a "file.py:function" run after the part whatever its end (stops a daemon, say)


class PartContext:
    """What a part sees: the runner's settings, and a recorder that keeps every figure on disk."""

    def __init__(self, settings: dict, result_path: pathlib.Path):
        self.settings = settings
        self.figures: dict = {}
        self._path = pathlib.Path(result_path)

    def record(self, key: str, value) -> None:
        self.figures[key] = value
        self._write()

    def fail(self, message: str) -> None:
        self.figures["error"] = message
        self._write()

    def _write(self) -> None:
        write_atomically(self._path, json.dumps(self.figures, indent=1, default=str))


def load_module(path):
    """The Python file at ``path`` as a module (registered first, as dataclasses need)."""
    name = pathlib.Path(path).stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_function(target: str) -> Callable:
    path, _, name = target.rpartition(":")
    return getattr(load_module(path), name)


def child(target: str, settings_path: str, result_path: str) -> int:
    """Run one part in this process; its figures and any error go to ``result_path``."""
    ctx = PartContext(json.loads(pathlib.Path(settings_path).read_text()), pathlib.Path(result_path))
    try:
        returned = load_function(target)(ctx)
        for key, value in (returned or {}).items():
            ctx.record(key, value)
    except BaseException as e:  # noqa: BLE001 - recorded, and the runner goes on with the next part
        traceback.print_exc()
        ctx.fail(f"{type(e).__name__}: {e}".strip())
        return 1
    return 0


def run_parts(parts: list[Part], settings: dict, out: pathlib.Path, name: str,
              derive: Callable[[dict], tuple[dict, list[str]]] | None = None, title: str = "") -> dict:
    """Run ``parts`` in order, each a process given ``settings``; after every part rewrite
    ``out/name.json`` and ``out/name.md`` (``derive(parts) -> (json, markdown lines)`` adds a
    section computed from what is measured so far). Returns the final report."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{name}.log"
    log.write_text("")
    report = {"title": title, "started": _now(), "settings": settings, "parts": {}}
    with tempfile.TemporaryDirectory(prefix=f"{name}_") as tmp:
        settings_path = pathlib.Path(tmp) / "settings.json"
        settings_path.write_text(json.dumps(settings))
        for part in parts:
            report["parts"][part.name] = run_one(part, settings_path, pathlib.Path(tmp), log)
            report["finished"] = _now()
            markdown_extra = []
            if derive is not None:
                report["derived"], markdown_extra = derive(report["parts"])
            write_atomically(out / f"{name}.json", json.dumps(report, indent=1, default=str))
            write_atomically(out / f"{name}.md", markdown(report, markdown_extra))
    return report


def run_one(part: Part, settings_path: pathlib.Path, tmp: pathlib.Path, log: pathlib.Path) -> dict:
    """One part's process group under its limit: ``{status, seconds, limit_s, figures[, error]}``
    with status ok, failed (it raised or exited non-zero) or timeout (killed at its limit)."""
    result_path = tmp / f"{part.name}.json"
    started = time.perf_counter()
    header = f"{part.name} (limit {part.limit_s:g} s)"
    code = _run_process(part.target, settings_path, result_path, part.limit_s, log, header)
    seconds = time.perf_counter() - started
    figures = _read(result_path)
    error = figures.pop("error", None)
    if code is None:
        status, error = "timeout", f"ran past its limit of {part.limit_s:g} s and was killed" + (
            f" ({error})" if error else "")
    elif code == 0:
        status = "ok"
    else:
        status = "failed"
        error = error or f"its process died ({describe_exit(code)}); see the log"
    result = {"status": status, "seconds": round(seconds, 2), "limit_s": part.limit_s, "figures": figures}
    if error:
        result["error"] = error
    if part.cleanup:
        cleanup_path = tmp / f"{part.name}.cleanup.json"
        cleanup_code = _run_process(part.cleanup, settings_path, cleanup_path, CLEANUP_LIMIT_S, log,
                                    f"{part.name}: cleanup")
        if cleanup_code != 0:
            result["cleanup_error"] = _read(cleanup_path).get("error") or (
                "timed out" if cleanup_code is None else describe_exit(cleanup_code))
    return result


def _run_process(target: str, settings_path, result_path, limit_s: float, log: pathlib.Path, header: str) -> int | None:
    """The exit code of ``child(target)`` in a new process group, or None when it ran past ``limit_s``."""
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "child", target, str(settings_path),
               str(result_path)]
    with open(log, "a") as f:
        f.write(f"\n===== {header}, started {_now()} =====\n")
        f.flush()
        process = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=os.environ | {"PYTHONUNBUFFERED": "1"})
        try:
            code = process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            code = None
        _end_group(process)  # what a part leaves behind (loader workers, launched ranks) ends with it
        f.write(f"===== {header}: {'killed at its limit' if code is None else f'exit code {code}'} =====\n")
    return code


def _end_group(process: subprocess.Popen) -> None:
    """SIGTERM to the part's whole process group, SIGKILL to what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            process.poll()  # reap the part's own process, or it lingers as a zombie of the group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _read(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- markdown
def markdown(report: dict, extra: list[str] = ()) -> str:
    """The report as Markdown: one status table, then each part's figures, then ``extra``."""
    lines = [f"# {report['title'] or 'measurements'}", "", f"Started {report['started']}, last part ended "
             f"{report.get('finished', '-')}.", "", "| part | status | seconds | limit (s) |", "|---|---|---|---|"]
    for name, part in report["parts"].items():
        lines.append(f"| {name} | {part['status']} | {part['seconds']:.1f} | {part['limit_s']:g} |")
    for name, part in report["parts"].items():
        lines += ["", f"## {name}: {part['status']}"]
        if part.get("error"):
            lines += ["", f"Error: `{part['error']}`"]
        if part.get("cleanup_error"):
            lines += ["", f"Cleanup error: `{part['cleanup_error']}`"]
        rows = list(_flatten(part["figures"]))
        if rows:
            lines += ["", "| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    if extra:
        lines += [""] + list(extra)
    return "\n".join(lines) + "\n"


def _flatten(figures: dict, prefix: str = ""):
    for key, value in figures.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", format_value(value)


def format_value(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "child":
        sys.exit(child(*sys.argv[2:]))
    sys.exit(__doc__)
