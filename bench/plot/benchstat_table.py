#!/usr/bin/env python3
"""Turns `benchstat -table "" -row "pkg .fullname" -format csv` output (stdin)
into one combined Markdown table: a row per benchmark, a column per unit
(time/op, B/op, allocs/op, and one cell with the custom metrics such as
MB/s or queries/s), each value the median with benchstat's ± confidence interval."""
import csv
import sys

PREFIX = "github.com/apt-p2p/apt-p2p/"
FIRST = ["sec/op", "B/op", "allocs/op"]


def human_time(s):
    for unit, f in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= f:
            return f"{s / f:.4g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def human(v, unit):
    # Custom metrics measured in seconds ("cpu-sec/op", "wire-sec/decode", "go-s").
    if unit == "sec/op" or "sec/" in unit or unit.endswith("-s"):
        return human_time(v)
    if unit in ("B/op", "allocs/op"):
        return f"{v:.0f}" if v >= 10 else f"{v:.3g}"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.4g} M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.4g} k"
    return f"{v:.4g}"


def main():
    units, rows, order = [], {}, []
    unit = None
    for rec in csv.reader(sys.stdin):
        if len(rec) < 2:
            continue
        if rec[0] == "" and len(rec) >= 3 and rec[2] == "CI":
            unit = rec[1]
            if unit not in units:
                units.append(unit)
            continue
        if rec[0] == "" or unit is None or rec[1] == "":
            continue
        name = rec[0].removeprefix(PREFIX)
        if name.startswith("geomean"):
            continue
        try:
            v = float(rec[1])
        except ValueError:
            continue
        ci = rec[2] if len(rec) > 2 else ""
        if name not in rows:
            rows[name] = {}
            order.append(name)
        rows[name][unit] = human(v, unit) + (f" ± {ci}" if ci and ci not in ("∞", "0%") else "")
    cols = [u for u in FIRST if u in units]
    extra = [u for u in units if u not in FIRST]
    head = ["package", "benchmark"] + [("time/op" if u == "sec/op" else u) for u in cols] + ["other metrics"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in order:
        pkg, _, bench = name.partition(" ")
        bench = bench.removesuffix("-2")
        cells = [rows[name].get(u, "") for u in cols]
        other = "; ".join(f"{rows[name][u]} {u}" for u in extra if u in rows[name])
        print("| " + " | ".join([pkg, bench] + cells + [other]) + " |")

if __name__ == "__main__":
    main()
