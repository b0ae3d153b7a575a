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


def build_rate(m: dict) -> float:
    """Images built a second, less the seconds the build was paused (SIGSTOP, noted as
    paused_s beside the figures) while another measurement had the cores; none where the
    build shared the cores without a record of it (noted as contended: the reason)."""
    if m["built"].get("contended"):
        raise ValueError(m["built"]["contended"])
    return m["built"]["images"] / (m["built"]["seconds"] - m["built"].get("paused_s", 0.0))


def worse_phone(m: dict, at: int) -> float:
    ranks = m["served"]["ranks"].values()
    return min(float(np.mean([r is not None and r <= at for r in phone])) for phone in ranks)


PANELS = (
    ("build images/s", build_rate),
    ("database KiB an image", lambda m: sum(m["bytes_by_table"].values()) / m["n"] / 1024),
    ("upload p50 ms", lambda m: float(np.percentile(m["served"]["uploads"], 50)) * 1000),
    ("resident MiB (vectors)", lambda m: m["served"]["resident_bytes"] / 2**20),
    ("R@1 of the dev phone photos, the worse phone", lambda m: worse_phone(m, 1)),
    ("R@100, the worse phone", lambda m: worse_phone(m, 100)),
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
    figure, axes = plt.subplots(2, 3, figsize=(14, 7))
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


def table(series: dict[str, list[dict]]) -> str:
    """The measured points as the Markdown table of docs/scaling.md, a column each."""
    points = [(f"{p['n']:,} {name}", p) for name, found in series.items() if name != "simulated" for p in found]

    def row(title: str, cell) -> str:
        return f"| {title} | " + " | ".join(cell(p) for _, p in points) + " |"

    def phases(p: dict) -> str:
        share = {k: v / sum(p["built"]["phases"].values()) for k, v in p["built"]["phases"].items()}
        return " / ".join(f"{100 * share.get(k, 0):.0f}" for k in ("extraction", "words", "graph", "packing"))

    def kib(p: dict, *tables: str) -> str:
        return f"{sum(p['bytes_by_table'].get(t, 0) for t in tables) / p['n'] / 1024:.1f}"

    def recall(p: dict, at: int) -> str:
        ranks = p["served"]["ranks"]
        return " / ".join(f"{np.mean([r is not None and r <= at for r in ranks[phone]]):.3f}" for phone in ranks)

    def words(p: dict) -> str:
        lists = p["served"]["found_by"]
        return " / ".join(f"{np.mean(['words' in f for f in lists[phone]]):.2f}" for phone in lists)

    stages = ("global", "query features", "words", "reading features", "matching and ransac")
    return "\n".join([
        "| | " + " | ".join(name for name, _ in points) + " |",
        "|---|" + "---|" * len(points),
        row("build images/s (extraction / words / graph / packing %)",
            lambda p: f"{build_rate(p):.1f} ({phases(p)})" if _has(p, build_rate) else f"not comparable ({phases(p)})"),
        row("database KiB an image", lambda p: kib(p, *p["bytes_by_table"])),
        row("  local features / features / packed / visual words / vocabulary", lambda p: " / ".join(
            kib(p, t) for t in ("local_features", "features", "packed_blocks", "visual_words", "vocabulary_cells"))),
        row("service resident MiB (RSS after start)",
            lambda p: f"{p['served']['resident_bytes'] / 2**20:.0f} ({p['served']['rss_kib'] / 1024:.0f})"),
        row("upload p50 / p90 ms", lambda p: " / ".join(
            f"{1000 * np.percentile(p['served']['uploads'], q):.0f}" for q in (50, 90))),
        row("  " + " / ".join(stages) + " ms", lambda p: " / ".join(
            f"{1000 * p['served']['stages'].get(s, 0):.0f}" for s in stages)),
        row("R@1 Droid / Palm", lambda p: recall(p, 1)),
        row("R@100 Droid / Palm", lambda p: recall(p, 100)),
        row("right cover from the words' list, Droid / Palm", words),
        row("name query p50 ms", lambda p: f"{1000 * np.median(p['served']['names']):.0f}"),
        row("Corel-1k class P@10", lambda p: f"{p['served']['corel_p10']:.3f}"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--table", action="store_true", help="also print the Markdown table of the measured points")
    args = parser.parse_args()
    series = measured(args.workdir)
    draw(series, args.out)
    if args.table:
        print(table(series))


if __name__ == "__main__":
    main()
