"""The summary `.ci/run` prints last: per tox env its result, time, test counts and disk.

    python tools/ci_report.py --result-json R.json --workdir DIR --uv-cache DIR --start EPOCH

Reads tox's ``--result-json`` file: per env the time it took (``duration``: creating and
installing the env plus its commands; a reused env skips the installs), the time of its
pytest command, pytest's summary line and the ``W2REG_REQUIRE`` lines of tests/conftest.py
(passed counts of the libraries the env must test). Disk: ``du`` of the uv cache first and
then of each env, in one call, so each env shows only the bytes it does not hard-link from
the cache. Only the standard library; prints, never fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path

_SUMMARY = re.compile(r"^=+ (.*\b(?:passed|failed|error|errors|skipped)\b.*) in [\d.]+s")
_REQUIRE = re.compile(r"^=+ (W2REG_REQUIRE=.*?) =+$")


def _du(paths: list[Path]) -> dict[Path, int]:
    """Bytes per path, each hard-linked file counted once, at the first path that has it."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return {}
    proc = subprocess.run(
        ["du", "-s", "--block-size=1", *map(str, existing)], capture_output=True, text=True
    )
    out = {}
    for line in proc.stdout.splitlines():
        size, _, path = line.partition("\t")
        out[Path(path)] = int(size)
    return out


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _pytest_lines(env: dict) -> tuple[str, float, list[str]]:
    """pytest's summary, its run time, and the W2REG_REQUIRE section of its output."""
    summary, seconds, required = "", 0.0, []
    for cmd in env.get("test", []):
        if not any(Path(c).name in ("pytest", "py.test") for c in cmd.get("command", [])[:3]):
            continue
        seconds += cmd.get("elapsed", 0.0)
        lines = cmd.get("output", "").splitlines()
        for i, line in enumerate(lines):
            m = _SUMMARY.match(line)
            if m:
                summary = m.group(1)
            if _REQUIRE.match(line):
                for follow in lines[i + 1 :]:
                    if follow.startswith(("=", "_")):
                        break
                    required.append(follow.strip())
    return summary, seconds, required


def _versions(env: dict) -> str:
    py = env.get("python", {}).get("version_info", [])
    pins = dict(p.split("==", 1) for p in env.get("installed_packages", []) if "==" in p)
    python = ".".join(map(str, py[:2])) if py else "?"
    return f"py{python} torch {pins.get('torch', '?')}"


def report(result_json: Path, workdir: Path, uv_cache: Path, start: float) -> str:
    data = json.loads(result_json.read_text()) if result_json.exists() else {"testenvs": {}}
    envs = {  # envs tox did not get to (stopped, or not selected) have no result
        k: v for k, v in data.get("testenvs", {}).items() if not k.startswith(".") and "result" in v
    }
    disk = _du([uv_cache, *(workdir / name for name in envs)])
    rows = [("env", "result", "time", "pytest", "versions", "disk", "tests")]
    details = []
    for name, env in envs.items():
        res = env.get("result", {})
        ok = "OK" if res.get("success") else f"FAIL ({res.get('exit_code')})"
        summary, seconds, required = _pytest_lines(env)
        rows.append(
            (
                name,
                ok,
                f"{res.get('duration', 0):.0f} s",
                f"{seconds:.0f} s",
                _versions(env),
                _size(disk.get(workdir / name)),
                summary or "-",
            )
        )
        details += [f"  {name}: {line}" for line in required]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    total = sum(e.get("result", {}).get("duration", 0) for e in envs.values())
    lines += [
        "",
        "passed counts of what each env must test (W2REG_REQUIRE, tests/conftest.py):",
        *details,
        "",
        f"envs: {total:.0f} s in all; uv cache {uv_cache}: {_size(disk.get(uv_cache))} "
        f"(shared, hard-linked into the envs)",
        f"wall time of .ci/run: {time.time() - start:.0f} s; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) on "
        f"{os.cpu_count()} CPUs",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--result-json", type=Path, required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--uv-cache", type=Path, required=True)
    ap.add_argument("--start", type=float, required=True, help="epoch seconds .ci/run started")
    args = ap.parse_args(argv)
    print(report(args.result_json, args.workdir, args.uv_cache, args.start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
