"""Run the benchmarks: every ``benchmarks/bench_*.py`` in turn, or the ones named.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py              # all of them
    .venv/bin/python benchmarks/run.py lmm          # benchmarks/bench_lmm.py only
    .venv/bin/python benchmarks/run.py lmm -- --quick   # arguments after -- go to each script

Each script runs in its own process (so one benchmark's imports, compiled code and
memory do not colour the next) and prints its own table. The exit code is non-zero
if any script failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(names: list[str]) -> list[Path]:
    """Scripts to run: ``bench_<name>.py`` for each name given, else all of them, sorted."""
    if not names:
        return sorted(HERE.glob("bench_*.py"))
    out = []
    for name in names:
        stem = name.removesuffix(".py")
        stem = stem if stem.startswith("bench_") else f"bench_{stem}"
        path = HERE / f"{stem}.py"
        if not path.exists():
            known = ", ".join(p.stem.removeprefix("bench_") for p in sorted(HERE.glob("bench_*.py")))
            raise SystemExit(f"no benchmark {name!r} (benchmarks/{stem}.py); known: {known}")
        out.append(path)
    return out


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        names, passthrough = argv[:cut], argv[cut + 1:]
    else:
        names, passthrough = argv, []
    failed = []
    for script in discover(names):
        print(f"=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script), *passthrough], cwd=HERE.parent)
        print(f"=== {script.name}: exit {rc}, {time.perf_counter() - t0:.1f} s wall ===\n", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
