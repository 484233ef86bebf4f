#!/usr/bin/env python3
"""Draws the DHT get-latency CDF from bench/dhtplot CSV files.

In the style of the original apt-p2p paper's response-time figure: the CDF of
lookup response time, log-scale x axis, one curve per timeout profile (and
per network size), with the paper's measured 17 s average marked.

usage: dht_cdf.py OUT.png CSV [CSV ...]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PAPER_MEAN_S = 17.0  # apt-p2p 2008 on PlanetLab: find_value took 17 s on average


def load(paths):
    series = {}
    for p in paths:
        with open(p, newline="") as f:
            for row in csv.DictReader(f):
                if row["found"] != "true":
                    continue
                key = (row["profile"], int(row["nodes"]))
                series.setdefault(key, []).append(float(row["latency_s"]))
    return series


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out, paths = sys.argv[1], sys.argv[2:]
    series = load(paths)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"default": "tab:blue", "classic": "tab:red"}
    styles = {}
    for i, n in enumerate(sorted({k[1] for k in series})):
        styles[n] = ["-", "--", ":"][i % 3]
    for (profile, nodes), xs in sorted(series.items()):
        xs.sort()
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        mean = sum(xs) / len(xs)
        label = f"{profile} timeouts, {nodes:,} nodes (mean {mean:.2f} s)"
        ax.step(xs, ys, where="post", color=colors.get(profile, "k"), linestyle=styles[nodes], label=label)
    ax.axvline(PAPER_MEAN_S, color="gray", linestyle="-.", linewidth=1)
    ax.text(PAPER_MEAN_S * 1.05, 0.05, "original's measured\naverage: 17 s", color="gray", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(0.05, 100)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("get (find_value) response time (s), log scale")
    ax.set_ylabel("cumulative fraction of lookups")
    ax.set_title("DHT lookup response time (simulated: 50% NATed, RTT 20-300 ms, 1% loss)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
