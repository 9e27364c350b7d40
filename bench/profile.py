"""Summarise a py-spy raw profile: ``python -m bench.profile FILE [--top N] [--match TEXT]``.

py-spy's ``--format raw`` writes one collapsed stack per line (``frame;frame;... count``). Flame
graphs hide where a flat hot path spends its time, so this prints two plain tables instead: self
time per function (where the CPU is) and inclusive time (which callers to make cheaper).
``bench.run --profile DIR`` writes such files for the measured window.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"\s*:\d+\)$")


def frame_key(frame: str) -> str:
    """``send (xiuxian_realtime/hub.py:120)`` -> ``send (xiuxian_realtime/hub.py)``: one row per function."""
    key = _LINE.sub(")", frame.strip())
    return re.sub(r"\(/.*?/site-packages/", "(", key)


def summarise(lines: list[str]) -> tuple[int, Counter[str], Counter[str]]:
    total, self_t, incl = 0, Counter(), Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_key(f) for f in stack.split(";") if f]
        if not frames:
            continue
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return total, self_t, incl


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--match", default="", help="only functions whose row contains this text")
    args = p.parse_args(argv)
    total, self_t, incl = summarise(args.file.read_text(encoding="utf-8", errors="replace").splitlines())
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    for title, table in (("self", self_t), ("inclusive", incl)):
        print(f"\n== {title} (of {total} samples) ==")
        rows = [(k, v) for k, v in table.most_common() if args.match in k][: args.top]
        for key, n in rows:
            print(f"{100 * n / total:6.1f}%  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
