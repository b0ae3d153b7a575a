"""Command line: parse, call, print. The work lives in index.build, query, evaluate, report."""
from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from imgsearch import __version__
from imgsearch.config import Settings, database_url, flag_range, load_settings
from imgsearch.errors import ImgsearchError
from imgsearch.features.regions import REGION_CHOICES, REGIONS
from imgsearch.features.registry import EXTRACTORS
from imgsearch.features.registry import help_text as extractor_help
from imgsearch.rerank.registry import help_text as rerank_help
from imgsearch.scan.metrics import METRICS

WHITEN_HELP = (
    "Learned linear map, fitted on the training folds: pca[:dims,power,shrinkage] (PCA-whitening, Jegou & "
    "Chum, ECCV 2012; full whitening hurts small collections: try pca:32,0.25) or lw[:dims,shrinkage] "
    "(supervised learned whitening from same-class / other-class pairs, Radenovic et al., ECCV 2016) or "
    "triplet[:dims,margin] (linear projection trained with a triplet loss, Schroff et al., CVPR 2015)."
)
RERANK_HELP = rerank_help()
METRIC_HELP = "; ".join(f"{m.name}: {m.description}" for m in METRICS.values()) + "."


def extractor_option(default: str) -> Callable[..., Any]:
    """--extractor / -e, once for every command that reads one extractor's vectors."""
    return click.option("--extractor", "-e", type=click.Choice(sorted(EXTRACTORS)),
                        help=f"{extractor_help()} Default: {default}.")


def metric_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--metric", "-m", type=click.Choice(list(METRICS)),
                        help=METRIC_HELP + " Default: [query] metric, pearson.")(fn)


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--db", "db_url", metavar="URL",
                  help="mysql://user:pass@host:3306/db, sqlite:///file or a file path. "
                       "Default: IMGSEARCH_DB_URL, [database] url in config.ini, else imgsearch.sqlite3 here.")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False),
                  help="Config file (default: IMGSEARCH_CONFIG or ./config.ini).")
    @functools.wraps(fn)
    def wrapper(db_url: str | None, config_file: str | None, **kwargs: Any) -> Any:
        settings = load_settings(config_file).with_flags(db_url=db_url)
        return fn(settings, **kwargs)

    return wrapper


def cnn_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--max-side", type=click.IntRange(32, 4096),
                      help="cnn-*: longer side of the network input, rounded to a multiple of 32 (default 256).")(fn)
    return click.option("--multiscale/--single-scale", default=None,
                        help="cnn-*: average descriptors over scales 1, 1/sqrt2, sqrt2 (3x slower; default single).")(fn)


def cnn_options_of(settings: Settings):
    from imgsearch.features.registry import CnnOptions

    return CnnOptions(max_side=settings.cnn_max_side, multiscale=settings.cnn_multiscale)


def open_settings_store(settings: Settings, create: bool = False):
    from imgsearch.store import open_store

    return open_store(database_url(settings), create=create)


def open_reading_store(settings: Settings):
    """The store a read-only command reads: a replica when some are configured."""
    from imgsearch.store.replica import open_replica

    replica = replica_url(settings)
    if replica is None:
        return open_settings_store(settings)
    return open_replica(database_url(settings), replica, settings.replica_wait)


def replica_url(settings: Settings):
    """One of the configured replicas, at random (the reads spread over them), or None."""
    import random

    if not settings.replicas:
        return None
    return database_url(settings, random.choice(settings.replicas))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imgsearch")
def cli() -> None:
    """Query-by-example image search: index a photo folder into MySQL/MariaDB (or the
    embedded SQLite default), then find the images most similar to a given one."""


@cli.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option("--extractor", "-e", "extractors", multiple=True, type=click.Choice(sorted(EXTRACTORS)),
              help="Descriptor to compute (see `query --help`); repeat for several. Default: [build] extractors "
                   "(rgb, hsv72, cnn-spoc, phash, sift).")
@click.option("--no-local-features", is_flag=True,
              help="Leave out local features (sift) and their visual words: about 66 KB an image and most of the "
                   "build time on small photos. Queries then rank by look-alike only: a photo of an object is no "
                   "longer verified against the stored images (see `query --rerank`).")
@click.option("--workers", "-j", type=flag_range("workers"), help="Decoding processes (default: the core count).")
@click.option("--batch-size", type=flag_range("batch_size"), help="Images per transaction (default 256).")
@click.option("--verbose", "-v", is_flag=True, help="List every skipped file with its reason.")
@click.option("--no-follow-links", is_flag=True,
              help="Do not follow links to folders (by default each linked folder is walked once, as `find -L` "
                   "does; a link into the collection, to a folder holding it or to one already walked is not "
                   "followed). Either way the summary names every link it did not follow, and rows already "
                   "indexed below such a link are kept.")
@click.option("--verify-content", is_flag=True,
              help="Hash every file, not only the new and changed ones: a file replaced by other bytes of the same "
                   "size and modification time (cp -p, rsync -t, a camera that rewrites) is then read again. "
                   "Without it such a file is taken as unchanged; with it a no-change build reads the whole "
                   "collection (docs/benchmarks.md measures what that costs). The summary says how many it caught.")
@click.option("--shard", metavar="I/N", help="Index only shard I of N (a stable hash of each relative path: the "
                                            "first 8 bytes of its SHA-256 modulo N), so N machines that see the same "
                                            "folder at the same path build one index together. Removes only its own "
                                            "shard's vanished files.")
@cnn_options
@common_options
def build(settings: Settings, folder: str | None, extractors: tuple[str, ...], no_local_features: bool,
          workers: int | None, batch_size: int | None, verbose: bool, no_follow_links: bool, verify_content: bool,
          shard: str | None, max_side: int | None, multiscale: bool | None) -> None:
    """Index every image below FOLDER (default: [collection] folder of the config).

    Incremental: a rerun reads only new or changed files (another size or modification
    time) and removes the rows of files that disappeared; a file moved or renamed (the same
    size and sha256 at a new path) keeps its row and id, read once, not extracted.
    Unreadable, corrupt and non-image files are skipped and counted. A stored file whose
    path now holds no image (bytes that do not decode, an empty file, a broken link, a
    folder) loses its row, named in the summary; one the build may not read keeps it."""
    from imgsearch.features.registry import without_kind
    from imgsearch.index.build import build as run_build
    from imgsearch.index.shards import parse_shard
    from imgsearch.names import display
    from imgsearch.store import index_exists, remove_if_empty
    from imgsearch.store.kinds import LOCAL
    from imgsearch.store.url import scheme_of

    settings = settings.with_flags(folder=folder, build_extractors=extractors, workers=workers, batch_size=batch_size,
                                   cnn_max_side=max_side, cnn_multiscale=multiscale)
    url = database_url(settings)
    if settings.folder is None and not index_exists(url):
        raise ImgsearchError("no FOLDER given, none configured ([collection] folder in config.ini), "
                             "and no index here to update: run `imgsearch build FOLDER`")
    names = without_kind(settings.build_extractors, LOCAL.name) if no_local_features else settings.build_extractors
    if not names:
        raise ImgsearchError("--no-local-features leaves no extractor to build; name one with -e")
    new_file = scheme_of(url).embedded and not index_exists(url)
    try:
        with open_settings_store(settings, create=True) as store:
            report = run_build(store, settings.folder, names, settings.workers,
                               settings.batch_size, progress=True, options=cnn_options_of(settings),
                               pack_rows=settings.pack_rows, shard=parse_shard(shard) if shard else None,
                               block_rows=settings.block_rows, follow_links=not no_follow_links,
                               default_graph=settings.default_graph, verify_content=verify_content)
            advice = store.cache_advice()
    except BaseException:
        if new_file:  # a build that failed before indexing anything leaves no file behind
            remove_if_empty(url)
        raise
    shown = report.skipped if verbose else report.skipped[:10]
    for path, reason in shown:
        click.echo(f"skipped {display(path)}: {reason}", err=True)
    if len(report.skipped) > len(shown):
        click.echo(f"... and {len(report.skipped) - len(shown)} more skipped (--verbose lists them)", err=True)
    click.echo(report.summary())
    if advice is not None:
        click.echo(f"imgsearch: {advice}", err=True)


@cli.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option("-e", "--extractor", "extractors", multiple=True, type=click.Choice(sorted(EXTRACTORS)),
              help="Descriptor to compute, as for build (default: [build] extractors).")
@click.option("-j", "--workers", type=flag_range("workers"), help="Decoding processes (default: the core count).")
@click.option("--batch-size", type=flag_range("batch_size"), help="Images per transaction (default 256).")
@click.option("--quiet-seconds", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True,
              help="Build once the folder has had no change for this long: a burst of copies is one build, "
                   "and a file being written waits until it stops changing.")
@click.option("--rescan-minutes", type=click.FloatRange(1, 10_080), default=60, show_default=True,
              help="A full pass this often, whatever the events said (a network folder may send none).")
@common_options
def watch(settings: Settings, folder: str | None, extractors: tuple[str, ...], workers: int | None,
          batch_size: int | None, quiet_seconds: float, rescan_minutes: float) -> None:
    """Keep the index of FOLDER up to date as files come, change, move and go.

    Builds at start (what changed while nobody watched), then after each change once the
    folder is quiet, with the same incremental build as `build`. Ctrl-C or SIGTERM ends
    it after the current batch: every batch written is whole."""
    import signal
    import threading

    from imgsearch.index.watch import watch_folder

    settings = settings.with_flags(folder=folder, build_extractors=extractors, workers=workers, batch_size=batch_size)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with open_settings_store(settings, create=True) as store:
        click.echo(f"imgsearch: watching {settings.folder or 'the collection'} (Ctrl-C stops after the current batch)",
                   err=True)
        watch_folder(store, settings.folder, watch_plan(settings, quiet_seconds, rescan_minutes), stop, said_at)


def watch_plan(settings: Settings, quiet_seconds: float, rescan_minutes: float):
    from imgsearch.index.watch import WatchPlan

    return WatchPlan(settings.build_extractors, settings.workers, settings.batch_size, cnn_options_of(settings),
                     settings.pack_rows, settings.block_rows, quiet_seconds, rescan_minutes * 60,
                     settings.default_graph)


def said_at(text: str) -> None:
    import time

    click.echo(f"{time.strftime('%H:%M:%S')} {text}")


@cli.command()
@click.argument("image")
@extractor_option("[query] extractor, cnn-spoc")
@metric_option
@click.option("--top-k", "-k", type=flag_range("top_k"), help="How many matches to print (default 10).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.option("--include-self", is_flag=True, help="Keep the query's own stored row in the results.")
@click.option("--parallel", "-P", type=flag_range("parallel"),
              help="Scan connections, each streaming a part of the packed blocks; the merged result is "
                   "exactly the single-connection one. Raise it when the server has idle cores (default 1).")
@click.option("--rerank", metavar="NAME[:PARAMS]",
              help=RERANK_HELP + " aqe and alpha-qe cost a second scan; dba-aqe scans the augmented vectors and "
                   "diffusion and k-reciprocal re-rank the top `shortlist` (1000 / 100) with the k-NN graph that "
                   "`imgsearch graph` keeps (--dba N for dba-aqe:N). Default: dba-aqe+verify, of what the index "
                   "keeps (a default build keeps both): verified images first (the photo's object above "
                   "photos sharing only its surroundings), the rest in dba-aqe's order; "
                   "`none` turns the default off.")
@click.option("--whiten", metavar="NAME", help="Apply the learned map NAME (see `imgsearch learn`) to the "
                                                  "query and every stored vector before scoring.")
@click.option("--replica", metavar="URL", help="Read from this replica of the --db server (default: one of "
                                               "[database] replicas), after it has applied what the primary had "
                                               "committed (at most [database] replica_wait s, else an error).")
@click.option("--under", metavar="FOLDER", help="Only the images under this folder of the collection (a path, or "
                                                  "relative to the collection's root): the top-K among them, exactly.")
@click.option("--regions", type=click.Choice(REGION_CHOICES),
              help="A query photo's regions, each scored against the collection, an image scoring by its best: "
                   "finds an object that covers part of the photo (a painting on a wall, a product on a table). "
                   "crops: 13 crops each extracted anew (default, [query] regions; about 0.3 s a query); map: the "
                   "R-MAC grid of the feature map at 1x and 2x size (one more forward pass; faster, a little less "
                   "exact on small objects); none: the whole photo only. cnn-* extractors, photo queries, no --rerank.")
@common_options
def query(settings: Settings, image: str, extractor: str | None, metric: str | None, top_k: int | None,
          as_json: bool, include_self: bool, parallel: int | None, rerank: str | None, whiten: str | None,
          replica: str | None, regions: str | None, under: str | None) -> None:
    """Print the indexed images most similar to IMAGE.

    IMAGE is a file path, or the name or relative path of an indexed image (`45.jpg`)."""
    from imgsearch.library import Index
    from imgsearch.report import answer_lines

    settings = settings.with_flags(extractor=extractor, metric=metric, top_k=top_k, parallel=parallel, regions=regions,
                                   replicas=(replica,) if replica else None)
    with Index(open_reading_store(settings), settings) as index:
        result = index.query(image, k=settings.top_k, under=under, rerank=rerank, whiten=whiten,
                             include_self=include_self)
    for note in result.notes:
        click.echo(f"imgsearch: note: {note}", err=True)
    if as_json:
        if result.close_match is False:
            click.echo(f"imgsearch: note: no close match: even the best score is in the range of unrelated photos of "
                       f"this index (`imgsearch stats` shows the {result.extractor}/{result.metric} cut)", err=True)
        click.echo(json.dumps(result.as_json()))
        return
    click.echo("\n".join(answer_lines(result)))


@cli.command(name="eval")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@extractor_option("[query] extractor, cnn-spoc")
@metric_option
@click.option("--workers", "-j", type=flag_range("workers"), help="Decoding processes (default: the core count).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--whiten", metavar="NAME[:PARAMS]", help=WHITEN_HELP)
@click.option("--rerank", metavar="NAME[:PARAMS]", help=RERANK_HELP)
@click.option("--regions", type=click.Choice(sorted(REGIONS)),
              help="Each image queries by its best region (see `query --help`): checks that regions do not hurt "
                   "the plain case.")
@click.option("--folds", type=click.IntRange(1, 20),
              help="k-fold by image, stratified by class: learned steps never see their test images "
                   "(default 2 with --whiten, else 1 = plain leave-one-out).")
@cnn_options
def evaluate(dataset: Path, extractor: str | None, metric: str | None, workers: int | None, as_json: bool,
             config_file: str | None, whiten: str | None, rerank: str | None, regions: str | None, folds: int | None,
             max_side: int | None, multiscale: bool | None) -> None:
    """Leave-one-out retrieval quality on DATASET, a folder whose sub-folders are classes.

    Every image queries all others; prints mAP, P@1, P@10, P@20, P@100 and n_queries.
    With no flags it measures what `query` runs with none on a default build (re-ranking
    dba-aqe+verify); `--rerank none` measures the descriptor alone."""
    from imgsearch.evaluate import evaluate as run_eval
    from imgsearch.evaluate import measured_rerank

    settings = load_settings(config_file).with_flags(extractor=extractor, metric=metric, workers=workers,
                                                     cnn_max_side=max_side, cnn_multiscale=multiscale)
    scores = run_eval(dataset, settings.extractor, settings.metric, settings.workers,
                      options=cnn_options_of(settings), whiten=whiten, rerank=rerank, folds=folds or 0,
                      regions=regions)
    if as_json:
        click.echo(json.dumps(scores))
        return
    pipeline = measured_rerank(rerank, whiten, regions, folds or 0)
    click.echo(f"{settings.extractor} / {settings.metric} / re-ranking {pipeline} on {dataset}")
    for key, value in scores.items():
        click.echo(f"{key:>10}  {value}" if isinstance(value, int) else f"{key:>10}  {value:.4f}")


@cli.command()
@click.argument("name")
@extractor_option("every stored one")
@click.option("--values", is_flag=True, help="Print every stored value (vectors, keypoints) instead of a summary.")
@common_options
def show(settings: Settings, name: str, extractor: str | None, values: bool) -> None:
    """Print the stored metadata of the indexed image NAME and a summary of each stored
    descriptor (every value with --values)."""
    from imgsearch.report import describe_image

    with open_settings_store(settings) as store:
        click.echo(describe_image(store, name, extractor, values))


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@common_options
def compare(settings: Settings, a: str, b: str, as_json: bool) -> None:
    """Compare two images through every descriptor the index stores.

    A and B are files or indexed images (a name or relative path, as `query` takes them).
    Prints each vector descriptor's score under each metric, how many bits the perceptual
    hashes differ, and whether the local features verify that both show the same object
    (inliers; with --json, B's outline in A)."""
    from imgsearch.library import Index

    with Index(open_settings_store(settings), settings) as index:
        found = index.compare(a, b)
    click.echo(json.dumps(found.as_json()) if as_json else found.text())


@cli.command()
@click.option("--extractor", "-e", "extractors", multiple=True, type=click.Choice(sorted(EXTRACTORS)),
              help="Only this descriptor (repeatable). Default: every stored one.")
@common_options
def pack(settings: Settings, extractors: tuple[str, ...]) -> None:
    """Bring the packed copy of the vectors up to date (build does this by itself).

    Queries stream packed rows (1,024 vectors each, fewer for wide vectors: a row stays a
    few MiB, under the server's max_allowed_packet) plus the rows written since the last
    pack. Packing rewrites only the blocks that changed, in transactions of at most 128 MiB
    of vectors; an interrupted pack keeps the steps it committed and results stay exact."""
    with open_settings_store(settings) as store:
        rows = [r for r in store.extractors() if not extractors or r.name in extractors]
        for row in rows:
            report = store.pack(row, settings.pack_rows)
            click.echo(f"{row.name}: {report.vectors_moved} vectors into {report.blocks_written} blocks, "
                       f"{report.blocks_removed} old blocks removed")


@cli.command()
@click.argument("name")
@extractor_option("[query] extractor, cnn-spoc")
@metric_option
@click.option("--method", default="lw", show_default=True, metavar="METHOD[:PARAMS]", help=WHITEN_HELP)
@common_options
def learn(settings: Settings, name: str, extractor: str | None, metric: str | None, method: str) -> None:
    """Fit a learned map on every stored vector of an extractor and store it as NAME.

    The map is learned on the vectors as prepared for the metric and scores by dot product
    in its space, exactly as `eval --whiten` measures it; query it with the same -m.
    Supervised methods (lw) take each image's first folder as its class. Apply it with
    `query --whiten NAME`. Measure first: `eval --whiten METHOD` learns on some folds and
    tests on the others (unsupervised full PCA-whitening hurts small collections)."""
    from imgsearch.learn.stored import learn_map
    from imgsearch.query import stored_extractor
    from imgsearch.scan.metrics import get_metric

    settings = settings.with_flags(extractor=extractor, metric=metric)
    with open_settings_store(settings) as store:
        row, _ = stored_extractor(store, settings.extractor)
        trained_on, dims = learn_map(store, row, get_metric(settings.metric), name, method, settings.block_rows)
    click.echo(f"learned {method} on {trained_on} {settings.extractor} vectors prepared for {settings.metric} "
               f"-> {dims} dims, stored as {name!r}")


@cli.command()
@extractor_option("[query] extractor, cnn-spoc")
@metric_option
@click.option("--neighbours", "-n", "k", type=click.IntRange(1, 1000),
              help="Neighbours kept per image (a new graph: 30). Another value than the stored graph's makes it again.")
@click.option("--dba", type=click.IntRange(0, 1000),
              help="Also keep each image's vector averaged with its DBA nearest (database-side augmentation, "
                   "Arandjelovic & Zisserman, CVPR 2012) for `query --rerank dba-aqe:DBA`; 3 is the usual choice "
                   "(a new graph: 0). Another value than the stored graph's makes it again.")
@click.option("--drop", is_flag=True, help="Delete the graph instead.")
@common_options
def graph(settings: Settings, extractor: str | None, metric: str | None, k: int | None, dba: int | None,
          drop: bool) -> None:
    """Compute or update the collection's k-nearest-neighbour graph, which `query --rerank
    diffusion` and `--rerank k-reciprocal` read.

    Exact: every image's k most similar others under the metric. Made once (it costs a
    scan of the collection per 2,048 images), it is then kept up to date by every build:
    a new image gets its neighbours and enters the lists it belongs to; a deleted or
    changed one is taken out of the lists that held it. A rerun without -n / --dba keeps
    the stored parameters. One graph update runs at a time per database; another waits."""
    from imgsearch.index.graph import configure_graph, remove_graph
    from imgsearch.query import stored_extractor

    settings = settings.with_flags(extractor=extractor, metric=metric)
    with open_settings_store(settings) as store:
        row, _ = stored_extractor(store, settings.extractor)
        if drop:
            remove_graph(store, row, settings.metric)
            click.echo(f"dropped the {settings.extractor}/{settings.metric} graph")
            return
        for line in configure_graph(store, row, settings.metric, settings.block_rows, settings.pack_rows, k, dba):
            click.echo(line)


@cli.command()
@click.option("--extractor", "-e", help="Descriptor whose vectors are compared (default cnn-spoc; any built one).")
@click.option("--metric", "-m", type=click.Choice(list(METRICS)), default="cosine", show_default=True)
@click.option("--threshold", "-t", type=click.FloatRange(-1, 1),
              help="Pairs scoring at least this are near-duplicates (default 0.9: precision 0.99 on copies made "
                   "from Corel-1k by bench/duplicates.py; lower finds more, and more false pairs).")
@click.option("--hash-bits", type=click.IntRange(-1, 63),
              help="Where the index has perceptual hashes (build -e phash, in the default build): images whose "
                   "hashes differ in at most this many of 63 bits, in any of 8 orientations, are copies "
                   "(resized, re-compressed, recoloured, turned by quarter turns). Default 6; -1: not compared.")
@click.option("--min-inliers", type=click.IntRange(-1),
              help="Where the index has local features (build -e sift, in the default build): each image's 10 nearest neighbours are "
                   "verified geometrically, and those with at least this many inliers are copies (cropped, "
                   "turned, watermarked). Default 40; -1: not verified.")
@click.option("--reference", metavar="FOLDER", help="Report only images that duplicate one under FOLDER (a folder of "
                                                    "the collection); the copy under FOLDER is the one kept.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: groups, each with the image kept and its members.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: group, role, reason, score, path.")
@click.option("--to-remove", is_flag=True, help="Only the paths of the images other than the ones kept, one a line.")
@click.option("-0", "null", is_flag=True, help="With --to-remove: end paths with NUL, for `xargs -0`.")
@click.option("--no-graph", is_flag=True, help="Compare every pair by the self-join even where the k-NN graph holds them.")
@click.option("--max-pairs", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Candidate pairs the report may check (each aligned from its files, about 12 ms): rules that "
                   "give more are refused before any is checked, with what to narrow.")
@common_options
def duplicates(settings: Settings, extractor: str | None, metric: str, threshold: float | None,
               hash_bits: int | None, min_inliers: int | None, reference: str | None, as_json: bool, as_csv: bool,
               to_remove: bool, null: bool, no_graph: bool, max_pairs: int) -> None:
    """Group the exact copies (same sha256) and near copies of the indexed images: edited,
    re-compressed or mirrored (descriptor score >= threshold), resized or turned (perceptual
    hashes), cropped or watermarked (verified local features).

    Each group keeps one image (most pixels, then oldest, then path) and lists the others
    with their score to it and what found them (exact, near, hash, verified). Nothing is deleted: `--to-remove -0 | xargs -0 rm` is yours
    to run after reading the report."""
    import csv
    import io

    from imgsearch.duplicates import DEFAULT_EXTRACTOR, CopyRules, csv_rows
    from imgsearch.duplicates import as_json as report_json
    from imgsearch.duplicates import text as report_text
    from imgsearch.library import Index

    rules = CopyRules.chosen(threshold, hash_bits, min_inliers)
    with Index(open_settings_store(settings), settings) as index, tqdm(unit="img", disable=None, file=sys.stderr) as bar:
        phases: list[str] = []

        def advance(phase: str, done: int, total: int) -> None:
            if phase not in phases:
                phases.append(phase)
                bar.reset(total)
                bar.set_description(phase)
            bar.update(done)

        report = index.duplicates(extractor or DEFAULT_EXTRACTOR, rules, reference, metric=metric, progress=advance,
                                  use_graph=not no_graph, max_pairs=max_pairs)
    if to_remove:
        end = "\0" if null else "\n"
        for path in report.to_remove():
            sys.stdout.buffer.write(os.fsencode(path) + end.encode())
        return
    if as_json:
        click.echo(json.dumps(report_json(report)))
        return
    if as_csv:
        # File names are the file system's bytes: undecodable ones leave as they came.
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="surrogateescape", newline="")
        csv.writer(out).writerows(csv_rows(report))
        out.flush()
        out.detach()
        return
    click.echo(report_text(report))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --token (or IMGSEARCH_API_TOKEN) or --no-auth.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--extractor", "-e", "extractors", multiple=True, type=click.Choice(sorted(EXTRACTORS)),
              help="Extractor to hold in memory (repeatable). Default: every one the index has.")
@click.option("--metric", "-m", "metrics", multiple=True, type=click.Choice(list(METRICS)),
              help="Metric to prepare in memory (repeatable; each costs one copy of the vectors). Default: [query] metric. "
                   "Other metrics are served by the streaming scan.")
@click.option("--max-memory", metavar="SIZE", help="Budget for resident vectors, e.g. 2G or 500M (default: half the "
                                                    "machine's memory). An extractor that does not fit is served by the "
                                                    "streaming scan, and /api/stats says so.")
@click.option("--token", envvar="IMGSEARCH_API_TOKEN", help="Bearer token every /api request must carry "
                                                             "(or IMGSEARCH_API_TOKEN).")
@click.option("--no-auth", is_flag=True, help="Serve a non-loopback address without a token, on purpose.")
@click.option("--upload-limit", default="20M", show_default=True, metavar="SIZE", help="Largest upload accepted.")
@click.option("--thumbnails", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for cached thumbnails (default: ~/.cache/imgsearch/thumbnails/<index>).")
@click.option("--replica", metavar="URL", help="Read from this replica of the --db server (default: one of "
                                               "[database] replicas). Every request first waits until it has applied "
                                               "what the primary had committed (at most [database] replica_wait s, "
                                               "else an error, 503).")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds a client may take to send a request's headers; slower clients are disconnected.")
@click.option("--body-timeout", default=60.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds a client may take to send a request's body (an upload) once its headers are in.")
@click.option("--max-connections", default=1024, show_default=True, type=click.IntRange(1, 100_000),
              help="Open connections served at once; a request beyond them gets 503 at once.")
@click.option("--upload-pixels", default=50_000_000, show_default=True, type=click.IntRange(1, 2_000_000_000),
              help="Largest upload in pixels, as its header declares them (read before decoding); "
                   "builds keep their own limit (IMGSEARCH_MAX_PIXELS).")
@click.option("--decode-memory", metavar="SIZE", default="1G", show_default=True,
              help="Memory for uploads decoded at once (about 9 bytes a pixel); others wait their turn, "
                   "up to 30 s, then get 503.")
@click.option("--max-pairs", default=50_000, show_default=True, type=click.IntRange(1),
              help="Candidate pairs one /api/duplicates report may check (about 12 ms each); rules that give more "
                   "are refused at once (422). One report is made at a time; another meanwhile gets 503.")
@click.option("--report-seconds", default=900.0, show_default=True, type=click.FloatRange(1),
              help="A duplicates report still running after this long is stopped (422): searches never wait on it.")
@click.option("--watch", is_flag=True, help="Keep the index up to date with its folder as `imgsearch watch` does, "
                                            "in this process (the [build] extractors; a photo copied in is "
                                            "searchable seconds later).")
@common_options
def serve(settings: Settings, host: str, port: int, extractors: tuple[str, ...], metrics: tuple[str, ...],
          max_memory: str | None, token: str | None, no_auth: bool, upload_limit: str, thumbnails: Path | None,
          replica: str | None, header_timeout: float, body_timeout: float, max_connections: int,
          upload_pixels: int, decode_memory: str, max_pairs: int, report_seconds: float, watch: bool) -> None:
    """Run the search service: a REST API (OpenAPI docs at /docs) and a web page at /.

    Holds each extractor's vectors in memory, prepared for the served metrics, answers
    exactly what `query` answers, and stays in step with builds that run elsewhere: every
    request first checks the index's change counter and takes in only what changed."""
    from imgsearch.index.watch import QUIET_SECONDS, RESCAN_SECONDS
    from imgsearch.serve.config import ServeConfig, half_the_memory, parse_size
    from imgsearch.serve.run import run_service

    settings = settings.with_flags(replicas=(replica,) if replica else None)
    run_service(ServeConfig(
        url=database_url(settings), extractors=extractors, metrics=metrics or (settings.metric,), settings=settings,
        max_memory=parse_size(max_memory, "--max-memory") if max_memory else half_the_memory(),
        replica=replica_url(settings), replica_wait=settings.replica_wait, upload_pixels=upload_pixels,
        decode_memory=parse_size(decode_memory, "--decode-memory"), host=host, port=port, token=token,
        no_auth=no_auth, upload_limit=parse_size(upload_limit, "--upload-limit"), thumbnails=thumbnails,
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections,
        max_pairs=max_pairs, report_seconds=report_seconds,
        watch=watch_plan(settings, QUIET_SECONDS, RESCAN_SECONDS / 60) if watch else None))


@cli.command()
@common_options
def stats(settings: Settings) -> None:
    """Counts per extractor, dimensions and database size."""
    from imgsearch.report import describe_store

    with open_settings_store(settings) as store:
        click.echo(describe_store(store))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("imgsearch: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except ImgsearchError as e:
        click.echo(f"imgsearch: error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("imgsearch: interrupted; whole batches written so far are kept, rerun to finish", err=True)
        sys.exit(130)
