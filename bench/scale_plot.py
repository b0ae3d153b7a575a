"""The curves of docs/scaling.md, drawn from what bench/scale.py measured (WORKDIR/measured-N-
SCHEME.json) and what bench/simulate.py measured on simulated rows (WORKDIR/simulated-N.json):
per N, build images/s, database bytes an image, upload p50 and the service's resident memory.

    python bench/scale_plot.py ~/.cache/imgsearch-bench/scale docs/scaling-curves.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: a file
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PANELS = (
    ("build images/s", lambda m: m["built"]["images"] / m["built"]["seconds"]),
    ("database KiB an image", lambda m: sum(m["bytes_by_table"].values()) / m["n"] / 1024),
    ("upload p50 ms", lambda m: float(np.percentile(m["served"]["uploads"], 50)) * 1000),
    ("resident MiB (vectors)", lambda m: m["served"]["resident_bytes"] / 2**20),
)


def measured(workdir: Path) -> dict[str, list[dict]]:
    """Each series' points by N: 'sqlite', 'mysql' (built), 'simulated'."""
    series: dict[str, list[dict]] = {}
    for path in sorted(workdir.glob("measured-*.json")):
        point = json.loads(path.read_text())
        series.setdefault(path.stem.split("-")[-1], []).append(point)
    for path in sorted(workdir.glob("simulated-*.json")):
        series.setdefault("simulated", []).append(json.loads(path.read_text()))
    return {name: sorted(points, key=lambda p: p["n"]) for name, points in series.items()}


def draw(series: dict[str, list[dict]], out: Path) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (title, value) in zip(axes.flat, PANELS):
        for name, points in series.items():
            shown = [(p["n"], value(p)) for p in points if _has(p, value)]
            if shown:
                ax.plot(*zip(*shown), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("images in the collection")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    figure.suptitle("imgsearch default pipeline by collection size (2 vCPU AMD EPYC)")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def _has(point: dict, value) -> bool:
    try:
        value(point)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    draw(measured(args.workdir), args.out)


if __name__ == "__main__":
    main()
