"""build: walk -> decode + extract (worker processes) -> write whole batches; incremental.

A file is re-read only when it is new, its size or mtime changed, or an extractor lacks
its vector; it is re-extracted only when its sha256 changed (or a vector is missing).
Rows of files that disappeared from disk are removed; only a positive "does not exist"
removes: a file the build cannot see (a folder it may not list, a path it may not stat)
keeps its rows and is reported. A row whose path the build looked at and found holding no
image it can index (bytes that do not decode, an empty file, a broken link, a folder) is
removed too, and the summary names it. A file that disappeared at one path and appears at
another with the same content keeps its row (index.moves), also where its old path now
holds something else.

The unchanged-file shortcut: a file of the stored size and modification time is taken as
unchanged without reading it. A file replaced by other bytes of the same size and time
(`cp -p`, `rsync -t`) passes it; `verify_content` hashes every such file instead (it costs
reading the whole collection: docs/benchmarks.md).
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imgsearch.decoding import decode_side_of
from imgsearch.errors import ImgsearchError, SkippedFile
from imgsearch.features.registry import CnnOptions, make_extractor
from imgsearch.index.calibration import update_calibration
from imgsearch.index.decode_rule import RuleChange, bring_to_decode_rule
from imgsearch.index.extraction import ExtractorSpec, extract_all, fit_on_folder, map_in_workers
from imgsearch.index.graph import keep_default_graph, update_graphs
from imgsearch.index.images import decode_to_side, has_image_suffix, read_bytes
from imgsearch.index.moves import Move, find_moves
from imgsearch.index.shards import Shard, in_shard
from imgsearch.index.walk import (
    FOLLOWED_LINKS_KEY,
    CollectionFolder,
    FollowedLink,
    FoundFile,
    Problem,
    folder_identity,
    walk_collection,
)
from imgsearch.index.words import update_words
from imgsearch.names import display
from imgsearch.store.base import COLLECTION_ROOT_KEY, MAX_NAME_BYTES, MAX_PATH_BYTES, FeatureStore, check_same_params
from imgsearch.store.packed import DEFAULT_PACK_ROWS
from imgsearch.store.records import ExtractorRow, ImageRecord, StoredImage


@dataclass(frozen=True)
class Task:
    found: FoundFile
    all_specs: tuple[ExtractorSpec, ...]  # what a new or changed file needs
    missing: tuple[ExtractorSpec, ...]  # what an unchanged stored file still lacks
    stored: StoredImage | None
    verify: bool = False  # of the stored size and time: read only to compare its sha256 (verify_content)


@dataclass(frozen=True)
class Stale:
    """A stored row whose path holds no image now, and what the build found there."""

    row: StoredImage
    why: str


@dataclass(frozen=True)
class Outcome:
    task: Task
    record: ImageRecord | None = None  # None and not skipped: verified unchanged, nothing to write
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    content_changed: bool = False
    skipped: SkippedFile | None = None


@dataclass
class BuildReport:
    indexed: int = 0
    moved: int = 0  # rows that kept their id at a new path (index.moves)
    unchanged: int = 0
    removed: int = 0  # rows removed: their file gone, or its path holding no image now (dropped)
    dropped: list[tuple[bytes, str]] = field(default_factory=list)  # (path, what it holds now) of removed rows
    verified: int = 0  # files of the stored size and time whose content was hashed (verify_content)
    caught: int = 0  # ... of them, changed behind the same size and time: read again
    kept: Counter[tuple[str, str]] = field(default_factory=Counter)  # (where, why) -> rows kept unseen
    unlisted: dict[bytes, str] = field(default_factory=dict)  # folders the walk could not list -> why
    repacked: int = 0
    rule_changes: list[RuleChange] = field(default_factory=list)  # extractors brought to their decode rule
    upkeep: list[str] = field(default_factory=list)  # a line per k-NN graph or visual-words update
    skipped: list[tuple[bytes, str]] = field(default_factory=list)
    followed: list[FollowedLink] = field(default_factory=list)
    links_not_followed: list[Problem] = field(default_factory=list)  # each named in the summary
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds of each step of the build, by name
    stopped: bool = False  # told to stop: the batches written are whole, the rest is the next build's

    def summary(self) -> str:
        reasons = Counter(reason for _, reason in self.skipped)
        detail = ", ".join(f"{why}: {n}" for why, n in reasons.most_common())
        skipped = f"skipped {len(self.skipped)}" + (f" ({detail})" if detail else "")
        kept = f"kept {sum(self.kept.values())} unseen, " if self.kept else ""
        links = f", {len(self.links_not_followed)} folder links not followed" if self.links_not_followed else ""
        moved = f"moved {self.moved}, " if self.moved else ""
        return "\n".join([
            f"indexed {self.indexed}, {moved}unchanged {self.unchanged}, removed {self.removed}, "
            f"{kept}{skipped}{links} in {self.seconds:.1f} s",
            *(f"followed folder link {display(k.relpath)} -> {k.target}" for k in self.followed),
            *(f"not followed: folder link {display(p.relpath)}: {p.reason}" for p in self.links_not_followed),
            *(f"kept {n} rows {where}: {why}" for (where, why), n in sorted(self.kept.items())),
            *(f"removed the row of {display(path)}: {why}" for path, why in self.dropped[:SHOWN_DROPPED]),
            *([f"... and {len(self.dropped) - SHOWN_DROPPED} more rows removed whose paths hold no image now"]
              if len(self.dropped) > SHOWN_DROPPED else []),
            *([f"verified the content of {self.verified} files of the stored size and time: "
               f"{self.caught} of them had changed: read again"] if self.verified else []),
            *(change.line() for change in self.rule_changes),
            *self.upkeep,
            *(["stopped when asked: every batch written is whole; the next build does the rest"] if self.stopped else []),
        ])


SHOWN_DROPPED = 20  # removed rows the summary names one by one


def build(
    store: FeatureStore,
    folder: str | None,
    extractor_names: tuple[str, ...],
    workers: int,
    batch_size: int,
    progress: bool = True,
    options: CnnOptions = CnnOptions(),
    pack_rows: int = DEFAULT_PACK_ROWS,
    shard: Shard | None = None,
    block_rows: int = 1024,
    follow_links: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    default_graph: tuple[str, str] | None = None,
    verify_content: bool = False,
) -> BuildReport:
    """Index the folder, then pack what changed (queries read packed blocks: see store)
    and update the k-NN graphs of the built extractors (see graph). should_stop is asked
    after each batch: when it says so, what is extracted is written and the build ends
    there (removals, packing and upkeep are the next build's). default_graph: the
    (extractor, metric) whose graph the default re-ranking reads, made when missing.
    verify_content: hash the files of the stored size and time too (see the module's text)."""
    started = time.perf_counter()
    root = resolve_collection_root(store, folder)
    identity = folder_identity(root)
    report = BuildReport()
    specs = {name: prepare_extractor(store, name, root, options, report) for name in extractor_names}
    if progress and report.rule_changes:  # before the long part: why every large image is read again
        print(f"imgsearch: {', '.join(c.extractor for c in report.rule_changes)} stored by another decode rule: "
              "their larger images are extracted again (the summary says how many)", file=sys.stderr, flush=True)
    rows = {name: store.find_extractor(name) for name in extractor_names}
    stored = store.stored_images()
    have = {specs[name]: store.image_ids_with_features(row) for name, row in rows.items()}
    walked = plan(root, stored, have, report, shard, follow_links, verify_content)
    # before any file below a link is written: the service serves them from these folders only
    links = CollectionFolder.links_to_meta(report.followed)
    if store.get_meta(FOLLOWED_LINKS_KEY) != links:
        store.set_meta(FOLLOWED_LINKS_KEY, links)
    run = _Run(store, report, rows, batch_size, progress)
    report.phases["walk"] = time.perf_counter() - started
    with run.timed("moves"):
        changes = run.moves_first(root, stored, walked, shard)
    with run.timed("extraction"):
        run.extract_and_write(changes, workers, should_stop)
    if not report.stopped:
        with run.timed("removals"):
            run.remove(root, identity, changes, walked.elsewhere)
        run.upkeep(default_graph, pack_rows, block_rows)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class Changes:
    """What the walk found against the stored rows, once the moves were written."""

    tasks: list[Task]  # the files to read
    gone: list[StoredImage]  # rows of files gone from disk
    stale: list[Stale]  # rows whose path holds no image now (more come from reading the files)
    moved: set[int]  # rows that kept their id at a new path


@dataclass
class _Run:
    """One build's steps and what they share."""

    store: FeatureStore
    report: BuildReport
    rows: dict[str, ExtractorRow]
    batch_size: int
    progress: bool

    def moves_first(self, root: Path, stored: dict[bytes, StoredImage], walked: WalkPlan,
                    shard: Shard | None) -> Changes:
        """Write the moves before anything is read: a moved file is not extracted again. A
        sharded build removes only its own shard's vanished files; a file moved here from
        another shard is claimed from that shard's vanished rows (see write_moves)."""
        gone, stale = vanished(root, {p: r for p, r in stored.items() if in_shard(p, shard)}, walked.present,
                               self.report)
        stale += walked.stale
        # a row is claimed by a move where its path holds something else now, too: another
        # file (its size changed), no image, or no file
        changed = [t.stored for t in walked.tasks if t.stored is not None and t.stored.bytes != t.found.size]
        claimable = gone + [s.row for s in stale] + changed
        if shard is not None:
            claimable += vanished(root, {p: r for p, r in stored.items() if not in_shard(p, shard)}, walked.present,
                                  BuildReport())[0]
        moves, _ = find_moves([t.found for t in walked.tasks if t.stored is None], claimable, self.progress)
        moves = write_moves(self.store, moves, self.batch_size, self.report)
        moved_paths, moved_ids = {m.record.path for m in moves}, {m.image_id for m in moves}
        # the old path of a moved row holds another file: a new one there
        tasks = [Task(t.found, t.all_specs, t.all_specs, None) if t.stored is not None and t.stored.id in moved_ids
                 else t for t in walked.tasks if t.found.relpath not in moved_paths]
        return Changes(tasks, gone, stale, moved_ids)

    def extract_and_write(self, changes: Changes, workers: int, should_stop: Callable[[], bool]) -> None:
        """Read, decode and extract in the workers; write whole batches, asking should_stop
        after each."""
        report, batch = self.report, []
        outcomes = map_in_workers(process, changes.tasks, workers)
        for outcome in tqdm(outcomes, total=len(changes.tasks), unit="img", disable=not self.progress or None,
                            desc="build", smoothing=0.1):
            report.verified += outcome.task.verify
            report.caught += outcome.task.verify and outcome.content_changed
            if outcome.skipped is not None:
                report.skipped.append((outcome.task.found.relpath, str(outcome.skipped)))
                if outcome.task.stored is not None and outcome.skipped.looked:
                    changes.stale.append(Stale(outcome.task.stored, str(outcome.skipped)))
                continue
            if outcome.record is None:
                report.unchanged += 1
                continue
            batch.append(outcome)
            if len(batch) >= self.batch_size:
                _write(self.store, batch, self.rows, report)
                batch = []
                if should_stop():
                    report.stopped = True
                    outcomes.close()  # the workers' queued files are dropped, not waited for
                    break
        if batch:
            _write(self.store, batch, self.rows, report)

    def remove(self, root: Path, identity: tuple[int, int] | None, changes: Changes, elsewhere: set[int]) -> None:
        """Delete the rows of files gone and of paths that hold no image now. A vanished row
        of the size of a new file in another shard is left for that shard's build to claim
        (deleted by this shard's next build if it did not)."""
        removed = [row for row in changes.gone if row.id not in changes.moved and row.bytes not in elsewhere]
        dropped = [s for s in changes.stale if s.row.id not in changes.moved and s.row.bytes not in elsewhere]
        if folder_identity(root) != identity:  # unmounted or swapped while walked: what it saw proves nothing
            raise ImgsearchError(f"collection folder {root} went away or was replaced during the build: "
                                 "nothing was removed; build again")
        self.report.removed = self.store.delete_images_at({row.id: row.path
                                                           for row in removed + [s.row for s in dropped]})
        self.report.dropped = [(s.row.path, s.why) for s in dropped]

    def upkeep(self, default_graph: tuple[str, str] | None, pack_rows: int, block_rows: int) -> None:
        """Pack what changed, and keep each extractor's graphs, calibration and words."""
        store, report = self.store, self.report
        with self.timed("graph"):
            if default_graph is not None and default_graph[0] in self.rows:
                keep_default_graph(store, self.rows[default_graph[0]], default_graph[1])
        for row in self.rows.values():
            with self.timed("packing"):
                report.repacked += store.pack(row, pack_rows).vectors_moved
            with self.timed("graph"):
                report.upkeep += update_graphs(store, row, block_rows, pack_rows, self.progress)
            with self.timed("calibration"):
                report.upkeep += update_calibration(store, row)
            if row.kind.verifies:  # its visual words, which shortlist what verification checks
                with self.timed("words"):
                    report.upkeep += update_words(store, row, self.progress)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.report.phases[phase] = self.report.phases.get(phase, 0.0) + time.perf_counter() - started


def prepare_extractor(store: FeatureStore, name: str, root: Path, options: CnnOptions,
                      report: BuildReport) -> ExtractorSpec:
    """The extractor as stored in this database; a new one that learns from the collection
    (PWA) is fitted on a sample of it first. Refuses a configuration that differs from
    the stored one: the new vectors would not be comparable with the old. One stored by
    another decode rule is brought to its own first (decode_rule), and the report says so."""
    configured = make_extractor(name, options=options)
    row = store.find_extractor(name)
    if row is None:
        extractor = fit_on_folder(configured, collection_images(root)) if configured.needs_fit else configured
        row = store.register_extractor(name, extractor.registered_params_json(), extractor.dim)
    extractor = make_extractor(name, row.params)
    if extractor.configuration() != configured.configuration():
        check_same_params(row, configured.params_json(), configured.dim)
    row, change = bring_to_decode_rule(store, row, extractor.decode_side)
    if change is not None:
        report.rule_changes.append(change)
    return name, row.params  # the stored text: it holds the decode rule the vectors are made by


def collection_images(root: Path) -> list[Path]:
    return [e.path for e in walk_collection(root) if isinstance(e, FoundFile) and has_image_suffix(e.path)]


def resolve_collection_root(store: FeatureStore, folder: str | None) -> Path:
    """The folder to index: the one given, else the one this database already indexes."""
    stored = store.get_meta(COLLECTION_ROOT_KEY)
    if folder is None:
        if stored is None:
            raise ImgsearchError("no FOLDER given and none configured ([collection] folder in config.ini)")
        folder = stored
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise ImgsearchError(f"collection folder {folder} does not exist or is not a folder")
    if stored is not None and Path(stored) != root:
        raise ImgsearchError(f"this database indexes {stored}, not {root}; use another --db for another collection")
    if stored is None:
        store.set_meta(COLLECTION_ROOT_KEY, str(root))
    return root


@dataclass
class WalkPlan:
    """The folder (or one shard of it) against the stored rows."""

    tasks: list[Task] = field(default_factory=list)  # the files to read
    present: set[bytes] = field(default_factory=set)  # every relative path seen on disk
    elsewhere: set[int] = field(default_factory=set)  # sizes of other shards' new files (a move from here?)
    stale: list[Stale] = field(default_factory=list)  # rows whose path the walk found holding no file


def plan(
    root: Path, stored: dict[bytes, StoredImage], have: dict[ExtractorSpec, set[int]], report: BuildReport,
    shard: Shard | None = None, follow_links: bool = True, verify_content: bool = False,
) -> WalkPlan:
    """Compare the folder (or one shard of it) with the stored rows; counts unchanged files
    and problems. The rows below a folder link not followed are kept, as below a folder
    that cannot be listed; a row at the path of a folder, a folder link or a broken link is
    stale."""
    names = tuple(have)
    walked = WalkPlan()
    for entry in walk_collection(root, follow_links):
        walked.present.add(entry.relpath)
        if (row := stored.get(entry.relpath)) is not None and in_shard(entry.relpath, shard):
            if isinstance(entry, FollowedLink):
                walked.stale.append(Stale(row, "a link to a folder now"))
            elif isinstance(entry, Problem) and entry.not_a_file:
                walked.stale.append(Stale(row, "a folder now" if entry.unlisted_folder else entry.reason))
        if isinstance(entry, FollowedLink):
            report.followed.append(entry)
        elif isinstance(entry, Problem) and entry.folder_link:
            report.links_not_followed.append(entry)
            report.unlisted[entry.relpath] = entry.reason
        elif not in_shard(entry.relpath, shard):
            if isinstance(entry, FoundFile) and entry.relpath not in stored:
                walked.elsewhere.add(entry.size)
        elif isinstance(entry, Problem) and entry.unlisted_folder:
            report.unlisted[entry.relpath] = entry.reason
            report.skipped.append((entry.relpath, entry.reason))
        elif isinstance(entry, Problem):
            report.skipped.append((entry.relpath, entry.reason))
        elif not has_image_suffix(entry.path):
            report.skipped.append((entry.relpath, "not an image file type"))
        elif len(entry.relpath) > MAX_PATH_BYTES or len(os.path.basename(entry.relpath)) > MAX_NAME_BYTES:
            report.skipped.append((entry.relpath, f"path longer than the index stores ({MAX_PATH_BYTES} bytes, "
                                                  f"file name {MAX_NAME_BYTES})"))
        elif row is None:
            walked.tasks.append(Task(entry, names, names, None))
        else:
            missing = tuple(n for n in names if row.id not in have[n])
            if row.bytes != entry.size or row.mtime_ns != entry.mtime_ns or missing:
                walked.tasks.append(Task(entry, names, missing, row))
            elif verify_content:
                walked.tasks.append(Task(entry, names, (), row, verify=True))
            else:
                report.unchanged += 1
    return walked


def process(task: Task) -> Outcome:
    """Worker side: read and hash; decode and extract only what the content needs."""
    try:
        data = read_bytes(task.found.path)
        sha256 = hashlib.sha256(data).hexdigest()
        same_content = task.stored is not None and task.stored.sha256 == sha256
        specs = task.missing if same_content else task.all_specs
        if same_content and task.verify:
            return Outcome(task)
        if same_content and not specs:
            return Outcome(task, _record(task.found, sha256, task.stored.width, task.stored.height))
        height, width, vectors = decoded_and_extracted(data, specs)
        return Outcome(
            task, _record(task.found, sha256, width, height), vectors,
            content_changed=task.stored is not None and not same_content,
        )
    except SkippedFile as e:
        return Outcome(task, skipped=e)


def decoded_and_extracted(data: bytes, specs: tuple[ExtractorSpec, ...]) -> tuple[int, int, dict[str, np.ndarray]]:
    """The image's own size and each extractor's output. The file is decoded once, at the
    largest side the extractors' stored decode rule asks for (decoding; prepare_extractor
    stored one for each)."""
    sized = decode_to_side(data, max(stored_decode_side(params) for _, params in specs))
    return sized.height, sized.width, extract_all(sized.pixels, specs, sized.scale)


def stored_decode_side(params: str) -> int:
    side = decode_side_of(params)
    if side is None:
        raise ValueError(f"extractor params without a decode rule: {params}")
    return side


def _record(found: FoundFile, sha256: str, width: int, height: int) -> ImageRecord:
    return ImageRecord(
        path=found.relpath, name=os.path.basename(found.relpath), bytes=found.size,
        mtime_ns=found.mtime_ns, sha256=sha256, width=width, height=height,
    )


def _write(store: FeatureStore, batch: list[Outcome], rows: dict[str, ExtractorRow], report: BuildReport) -> None:
    store.write_batch(
        [(o.record, {rows[name].id: vec for name, vec in o.vectors.items()}) for o in batch],
        replaced_ids=[o.task.stored.id for o in batch if o.content_changed],
    )
    for o in batch:
        if o.vectors:
            report.indexed += 1
        else:
            report.unchanged += 1


def write_moves(store: FeatureStore, moves: list[Move], batch_size: int, report: BuildReport) -> list[Move]:
    """The moved rows' new paths, a batch a transaction (a build killed among them leaves
    each row at its old path or its new one: the next build finds the rest again); the
    moves that took. A row another build moved or deleted since it was read is not moved
    (its new file is extracted as new): concurrent shard builds never both claim one."""
    done: list[Move] = []
    for start in range(0, len(moves), batch_size):
        chunk = moves[start : start + batch_size]
        moved = store.move_images([(m.image_id, m.old_path, m.record) for m in chunk])
        done += [m for m in chunk if m.image_id in moved]
    report.moved += len(done)
    return done


def vanished(root: Path, stored: dict[bytes, StoredImage], present: set[bytes], report: BuildReport,
             ) -> tuple[list[StoredImage], list[Stale]]:
    """The rows of files gone from disk, and of paths that are folders now. Gone means the
    system said so (ENOENT, ENOTDIR): a file the walk did not see for any other reason (a
    folder it may not list, a path it may not stat) keeps its row, counted in `report.kept`."""
    root_bytes = os.fsencode(root)
    gone, stale = [], []
    for path, row in stored.items():
        if path in present:
            continue
        try:
            info = os.lstat(os.path.join(root_bytes, path))
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                gone.append(row)
                continue
            why = f"cannot check it ({e.strerror})"
        else:
            if stat.S_ISDIR(info.st_mode):
                stale.append(Stale(row, "a folder now"))
                continue
            why = "on disk but not reached by the walk"
        report.kept[_kept_where(path, report.unlisted, why)] += 1
    return gone, stale


def _kept_where(path: bytes, unlisted: dict[bytes, str], why: str) -> tuple[str, str]:
    """Rows kept unseen are reported by the unlisted folder that holds them (the deepest),
    else one by one."""
    folders = [f for f in unlisted if f == b"." or path.startswith(f.rstrip(b"/") + b"/")]
    if not folders:
        return f"of {display(path)}", why
    folder = max(folders, key=len)
    shown = "the collection root" if folder == b"." else display(folder) + "/"
    return f"under {shown}", unlisted[folder]
