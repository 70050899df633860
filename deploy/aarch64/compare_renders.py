"""Compare two `grooverack sim` renders' trigger rises: hits per output and their times.

    python compare_renders.py HOST.csv OTHER.csv VARIANT STRICT(1/0)
"""

from __future__ import annotations

import csv
import sys


def rises(path: str) -> list[tuple[int, float]]:
    with open(path, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "trigger" and float(r["volts"]) > 0]
    return sorted((int(r["output"]), float(r["time_s"])) for r in rows)


def per_output(hits: list[tuple[int, float]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for output, _ in hits:
        out[output] = out.get(output, 0) + 1
    return dict(sorted(out.items()))


def main() -> int:
    host, other, variant, strict = rises(sys.argv[1]), rises(sys.argv[2]), sys.argv[3], sys.argv[4]
    same = len(host) == len(other) and all(
        a[0] == b[0] and abs(a[1] - b[1]) <= 0.001 for a, b in zip(host, other, strict=True))
    print(f"{variant} render: x86-64 {len(host)} hits {per_output(host)}; aarch64 {len(other)} "
          f"hits {per_output(other)}: {'the same hits (to 1 ms)' if same else 'different'}")
    return 0 if same or strict != "1" else 1


if __name__ == "__main__":
    sys.exit(main())
