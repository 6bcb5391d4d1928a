"""Where `make demo`'s minutes go: runs `dvc repro` (any extra arguments are passed on, e.g. `-f` to run every
stage) and prints each stage's wall-clock seconds, from the line where DVC starts it to the next stage's.
Stages DVC restores from its run cache or skips as unchanged count too (marked), so their seconds are not
added to the stage before them.

    python benchmarks/stage_times.py -f          # the whole demo profile, every stage re-run
"""

from __future__ import annotations

import subprocess
import sys
import time

STARTS = {"Running stage '": "ran", "Stage '": "skipped or restored"}  # DVC's lines as a stage begins


def stage_start(line: str) -> tuple[str, str] | None:
    """(stage, how) when the line is DVC's start of a stage, else None."""
    for marker, how in STARTS.items():
        at = line.find(marker)
        if at >= 0 and (marker != "Stage '" or at == 0 or line[at - 1] in "\r\n "):
            return line[at + len(marker) :].split("'", 1)[0], how
    return None


def stage_seconds(lines, clock=time.perf_counter) -> tuple[list[tuple[str, str, float]], float]:
    """([(stage, how, seconds)], total seconds) from dvc repro's output lines, timed as they arrive."""
    start = clock()
    stages, current, since = [], None, start
    for line in lines:
        sys.stdout.write(line)
        sys.stdout.flush()
        begun = stage_start(line)
        if begun:
            now = clock()
            if current:
                stages.append((*current, now - since))
            current, since = begun, now
    end = clock()
    if current:
        stages.append((*current, end - since))
    return stages, end - start


def main() -> int:
    process = subprocess.Popen(
        ["dvc", "repro", *sys.argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    stages, total = stage_seconds(process.stdout)
    code = process.wait()
    print(f"\n{'stage':<18} {'seconds':>8} {'share':>6}")
    for name, how, seconds in sorted(stages, key=lambda s: -s[2]):
        print(f"{name:<18} {seconds:8.1f} {seconds / total:6.1%}" + ("" if how == "ran" else f"  ({how})"))
    print(f"{'total':<18} {total:8.1f}   (dvc repro exited {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
