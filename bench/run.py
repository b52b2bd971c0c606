"""Run the benchmarks and print each figure beside its baseline, measured in the same run.

    .venv/bin/python -m bench.run            # full run, a few minutes (the system case)
    .venv/bin/python -m bench.run --quick    # smoke run, about twenty seconds
    .venv/bin/python -m bench.run --only eventlog,rules
    .venv/bin/python -m bench.run --pg       # the system case on PostgreSQL + Tansu instead
    .venv/bin/python -m bench.run --only system --people 200000   # the report at city scale

Results are printed as a table and written to ``bench/results/latest.json``. The eventlog,
rules and http cases run in this process on temp directories; the system case starts the
stack with ``ce run`` on 127.0.0.1 (temp data directory, free ports) and stops it;
``system-pg`` starts one ``ce serve`` per service on fresh PostgreSQL databases (dropped at the
end) and an in-memory Tansu broker (bench/runtime.py).
See bench/README.md for what each case measures and how to read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bench.common import Result

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# sizes of each case: (full, quick)
PARAMS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "eventlog": ({"messages": 100, "rounds": 30}, {"messages": 30, "rounds": 12}),
    "rules": ({"ops": 8000, "rounds": 15}, {"ops": 2000, "rounds": 5}),
    "http": ({"per_round": 40, "rounds": 10}, {"per_round": 15, "rounds": 4}),
    "system": (
        {"persons": 20000, "records": 50000, "claims": 640, "steady_per_s": 40, "steady_s": 10},
        {"persons": 1000, "records": 1000, "claims": 64, "steady_per_s": 10, "steady_s": 1},
    ),
}
PARAMS["console"] = (
    {"tasks": 500, "rounds": 5, "per_round": 40},
    {"tasks": 16, "rounds": 1, "per_round": 8},
)
PARAMS["system-pg"] = PARAMS["system"]  # the same sizes on PostgreSQL + the broker
CASES = tuple(PARAMS)
DEFAULT_CASES = ("eventlog", "rules", "http", "system", "console")


def selected_cases(only: str | None, *, pg: bool) -> list[str]:
    """The cases to run: ``--only``'s list or the default ones; with ``--pg`` the system case
    runs on PostgreSQL + the broker (``system-pg``) instead of embedded."""
    selected = [c.strip() for c in only.split(",")] if only else list(DEFAULT_CASES)
    if pg:
        selected = ["system-pg" if c == "system" else c for c in selected]
    return list(dict.fromkeys(selected))


def case_params(name: str, quick: bool, people: int | None) -> dict[str, int]:
    """The sizes of case ``name`` for this run (``people`` overrides the system case's
    population: persons registered, and so the report's size)."""
    params = dict(PARAMS[name][1 if quick else 0])
    if people is not None and "persons" in params:
        params["persons"] = people
    return params


async def _run_case(name: str, params: dict[str, int], workdir: Path) -> list[Result]:
    if name == "eventlog":
        from bench import case_eventlog

        return await case_eventlog.run(workdir, **params)
    if name == "rules":
        from bench import case_rules

        return case_rules.run(**params)
    if name == "http":
        from bench import case_http

        return await case_http.run(workdir, **params)
    if name == "console":
        from bench import case_console

        return await case_console.run(workdir, **params)
    if name in ("system", "system-pg"):
        from bench import case_system

        mode: Literal["embedded", "pg"] = "pg" if name == "system-pg" else "embedded"
        return await case_system.run(workdir, mode=mode, **params)
    raise ValueError(f"unknown case {name}")


def _fs_type(path: Path) -> str | None:
    """The filesystem type holding ``path`` (from /proc/mounts; None where unavailable)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, parts[2]
    return kind


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _table(results: list[Result]) -> str:
    rows = [("case", "figure", "baseline", "ratio", "better", "spread", "baseline is")]
    for r in results:
        low, high = r.details.get("round_ratio_min"), r.details.get("round_ratio_max")
        spread = f"{low:.2f}-{high:.2f}" if low is not None and high is not None else ""
        rows.append(
            (
                r.case,
                f"{_fmt(r.figure)} {r.unit}",
                f"{_fmt(r.baseline)} {r.unit}",
                f"{r.ratio:.3f}",
                r.better,
                spread,
                r.baseline_label,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(len(widths))] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 11)
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    selected = selected_cases(args.only, pg=args.pg)
    unknown = [c for c in selected if c not in PARAMS]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    tmp_root = Path(args.tmpdir) if args.tmpdir else Path(tempfile.gettempdir())
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "people": args.people,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_before": [round(v, 2) for v in os.getloadavg()],
        "tmp_dir": str(tmp_root),
        "tmp_fs": _fs_type(tmp_root),
        "commit": _commit(),
    }
    results: list[Result] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name in selected:
        params = case_params(name, args.quick, args.people)
        print(f"running {name} {params} ...", file=sys.stderr, flush=True)
        case_start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-", dir=tmp_root) as workdir:
                results.extend(await _run_case(name, params, Path(workdir)))
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        timings[name] = round(time.perf_counter() - case_start, 2)

    meta["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    meta["seconds"] = round(time.perf_counter() - started, 2)
    meta["case_seconds"] = timings
    print()
    print(_table(results))
    print()
    print(
        "ratio = figure / baseline, both measured in this run (medians over interleaved rounds);"
        "\n'better' says which direction of the ratio is an improvement; 'spread' is the range"
        "\nof per-round ratios (a noise gauge)."
    )
    print(f"{meta['mode']} run, {meta['seconds']} s, tmp on {meta['tmp_fs'] or '?'}", end="")
    print(f", load average {meta['load_avg_before'][0]} -> {meta['load_avg_after'][0]}")
    for name, error in errors.items():
        print(f"FAILED {name}: {error}")

    out_path = Path(args.json) if args.json else RESULTS_DIR / "latest.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "results": [r.as_json() for r in results], "errors": errors}
    out_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"results written to {out_path}")
    return 1 if errors else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run (~10 s)")
    parser.add_argument("--only", help=f"comma-separated cases to run ({', '.join(CASES)})")
    parser.add_argument(
        "--json", help="where to write the results (default bench/results/latest.json)"
    )
    parser.add_argument(
        "--tmpdir", help="where to make the temp directories (default: system temp)"
    )
    parser.add_argument(
        "--pg",
        action="store_true",
        help="run the system case on PostgreSQL (127.0.0.1:5432) and the Tansu broker",
    )
    parser.add_argument(
        "--people",
        type=_positive,
        help="persons in the system case (the report's population); default 20,000 / 1,000",
    )
    args = parser.parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
