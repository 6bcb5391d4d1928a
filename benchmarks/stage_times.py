"""Where `make demo`'s minutes go: runs `dvc repro` (any extra arguments are passed on, e.g. `-f` to run every
stage) and prints each stage's wall-clock seconds, from one "Running stage" line to the next.

    python benchmarks/stage_times.py -f          # the whole demo profile, every stage re-run
"""

from __future__ import annotations

import subprocess
import sys
import time

MARKER = "Running stage '"


def stage_seconds(lines, clock=time.perf_counter) -> tuple[list[tuple[str, float]], float]:
    """([(stage, seconds)], total seconds) from dvc repro's output lines, timed as they arrive."""
    start = clock()
    stages, current, since = [], None, start
    for line in lines:
        sys.stdout.write(line)
        sys.stdout.flush()
        if MARKER in line:
            now = clock()
            if current:
                stages.append((current, now - since))
            current, since = line.split(MARKER, 1)[1].split("'", 1)[0], now
    end = clock()
    if current:
        stages.append((current, end - since))
    return stages, end - start


def main() -> int:
    process = subprocess.Popen(["dvc", "repro", *sys.argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    stages, total = stage_seconds(process.stdout)
    code = process.wait()
    print(f"\n{'stage':<18} {'seconds':>8} {'share':>6}")
    for name, seconds in sorted(stages, key=lambda s: -s[1]):
        print(f"{name:<18} {seconds:8.1f} {seconds / total:6.1%}")
    print(f"{'total':<18} {total:8.1f}   (dvc repro exited {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
