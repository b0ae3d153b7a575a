"""One Settings object from defaults < config.ini < IMGSEARCH_* environment < flags.

Every value from the config file or the environment is converted and range-checked here,
with an error naming where it came from; flags are checked by their click types (the
same ranges, from the same table)."""
from __future__ import annotations

import configparser
import dataclasses
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from imgsearch.errors import ImgsearchError
from imgsearch.features.regions import REGION_CHOICES
from imgsearch.features.registry import EXTRACTORS
from imgsearch.scan.metrics import METRICS
from imgsearch.store.url import DEFAULT_READ_TIMEOUT, DatabaseUrl, parse_database_url, scheme_of

DEFAULT_CONFIG_FILE = "config.ini"


@dataclass(frozen=True)
class Source:
    """Where one setting may come from, its kind, and the values it takes."""

    section: str
    key: str
    env: str
    name: str  # the Settings field
    kind: str  # str, int, bool, name (one of choices), names (a comma list of choices), urls (a comma list)
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()

    def convert(self, raw: str, where: str) -> Any:
        if self.kind == "str":
            return raw
        if self.kind == "urls":
            return tuple(x.strip() for x in raw.split(",") if x.strip())
        if self.kind == "names":
            names = tuple(x.strip() for x in raw.split(",") if x.strip())
            unknown = [n for n in names if n not in self.choices]
            if unknown or not names:
                raise ImgsearchError(f"{where}: {', '.join(unknown) or 'nothing'} is not one of {', '.join(self.choices)}")
            return names
        if self.kind == "name":
            if raw not in self.choices:
                raise ImgsearchError(f"{where}: {raw!r} is not one of {', '.join(self.choices)}")
            return raw
        if self.kind == "bool":
            if raw.lower() in ("1", "yes", "true", "on"):
                return True
            if raw.lower() in ("0", "no", "false", "off"):
                return False
            raise ImgsearchError(f"{where}: {raw!r} is not yes/no")
        try:
            value = int(raw)
        except ValueError:
            raise ImgsearchError(f"{where}: {raw!r} is not a whole number") from None
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ImgsearchError(f"{where}: {value} is out of range; {self.range_text()}")
        return value

    def range_text(self) -> str:
        if self.high is None:
            return f"it must be at least {self.low}"
        return f"it must be from {self.low} to {self.high}"


EXTRACTOR_NAMES = tuple(sorted(EXTRACTORS))
SOURCES = (
    Source("database", "url", "IMGSEARCH_DB_URL", "db_url", "str"),
    # The password apart from the URL, so that it is not on a command line (`ps` shows those).
    Source("database", "password", "IMGSEARCH_DB_PASSWORD", "db_password", "str"),
    Source("database", "password_file", "IMGSEARCH_DB_PASSWORD_FILE", "db_password_file", "str"),
    Source("database", "read_timeout", "IMGSEARCH_READ_TIMEOUT", "read_timeout", "int", 1, 86_400),
    Source("database", "replicas", "IMGSEARCH_REPLICAS", "replicas", "urls"),
    Source("database", "replica_wait", "IMGSEARCH_REPLICA_WAIT", "replica_wait", "int", 1, 3600),
    Source("collection", "folder", "IMGSEARCH_FOLDER", "folder", "str"),
    Source("build", "extractors", "IMGSEARCH_BUILD_EXTRACTORS", "build_extractors", "names", choices=EXTRACTOR_NAMES),
    Source("build", "workers", "IMGSEARCH_WORKERS", "workers", "int", 1, 256),
    Source("build", "batch_size", "IMGSEARCH_BATCH_SIZE", "batch_size", "int", 1, 100_000),
    Source("build", "pack_rows", "IMGSEARCH_PACK_ROWS", "pack_rows", "int", 1, 1_000_000),
    Source("query", "extractor", "IMGSEARCH_EXTRACTOR", "extractor", "name", choices=EXTRACTOR_NAMES),
    Source("query", "metric", "IMGSEARCH_METRIC", "metric", "name", choices=tuple(METRICS)),
    Source("query", "top_k", "IMGSEARCH_TOP_K", "top_k", "int", 1, 1_000_000),
    Source("query", "block_rows", "IMGSEARCH_BLOCK_ROWS", "block_rows", "int", 1, 1_000_000),
    Source("query", "parallel", "IMGSEARCH_PARALLEL", "parallel", "int", 1, 64),
    Source("query", "regions", "IMGSEARCH_REGIONS", "regions", "name", choices=REGION_CHOICES),
    Source("cnn", "max_side", "IMGSEARCH_CNN_MAX_SIDE", "cnn_max_side", "int", 32, 4096),
    Source("cnn", "multiscale", "IMGSEARCH_CNN_MULTISCALE", "cnn_multiscale", "bool"),
)
SOURCE_OF = {s.name: s for s in SOURCES}


def flag_range(name: str) -> Any:
    """The click type of a flag for the setting `name`: the same range as its other sources."""
    import click

    source = SOURCE_OF[name]
    return click.IntRange(source.low, source.high)


@dataclass(frozen=True)
class Settings:
    db_url: str | None = None  # None: the embedded SQLite default
    db_password: str | None = None  # for a mysql:// URL (and replicas) that names none
    db_password_file: str | None = None  # its first line is the password
    read_timeout: int = DEFAULT_READ_TIMEOUT
    # Replicas `query` reads from (one at random), after waiting at most replica_wait
    # seconds for the one chosen to apply what the primary had committed.
    replicas: tuple[str, ...] = ()
    replica_wait: int = 10
    folder: str | None = None
    # The demo's colour histograms, and the best plain CNN descriptor measured (cnn-spoc:
    # Corel-1k mAP 0.910 against 0.52 for hsv72; docs/benchmarks.md); the perceptual hash
    # that finds resized and turned copies (duplicates) for 0.1 ms and 8 bytes an image;
    # local features, which verify that a photo shows the same object (bench/instance.py:
    # R@1 0.66 -> 0.98 among 9,000 photos) for about 66 KB an image (build --no-local-features).
    build_extractors: tuple[str, ...] = ("rgb", "hsv72", "cnn-spoc", "phash", "sift")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 256
    extractor: str = "cnn-spoc"  # Pearson on its L2-normalised vectors ranks as cosine
    metric: str = "pearson"
    top_k: int = 10
    block_rows: int = 1024
    parallel: int = 1  # scan connections; more only helps where the server has cores to spare
    # A query photo's regions (features/regions.py). On 1,000 Corel composites (bench/clutter.py)
    # R@1 at 30-60 % coverage: whole photo 0.31 / 0.76, "map" 0.88 / 0.98, "crops" 0.96 /
    # 0.98 (the aim was 0.95); leave-one-out mAP 0.9099 -> 0.9112 (map), 0.9088 (crops):
    # within 0.005. crops costs 13 more forward passes a query (270 ms here), map one.
    regions: str = "crops"
    pack_rows: int = 1024  # vectors per packed row (fewer for wide vectors: see store.packed)
    # Longer side of the network's input (rounded to a multiple of 32); 256 measured best
    # per cost on Corel-1k (GeM mAP 0.885 at 224, 0.891 at 256, 0.892 at 320, 0.893 at 384).
    cnn_max_side: int = 256
    cnn_multiscale: bool = False  # average over scales 1, 1/sqrt 2, sqrt 2 (3x the work)

    def password(self) -> str | None:
        """The password given apart from the URL: [database] password or
        IMGSEARCH_DB_PASSWORD, else the first line of the password file."""
        if self.db_password is not None:
            return self.db_password
        if self.db_password_file is None:
            return None
        try:
            with open(Path(self.db_password_file).expanduser(), encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ImgsearchError(f"cannot read the password file {self.db_password_file}: "
                                 f"{getattr(e, 'strerror', None) or e}") from None

    @property
    def default_graph(self) -> tuple[str, str]:
        """The graph builds keep: the one the default query's re-ranking reads."""
        return self.extractor, self.metric

    def with_flags(self, **flags: Any) -> Settings:
        """Flags given on the command line (None means not given) override the rest."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None and v != ()})


def database_url(settings: Settings, url: str | None = None) -> DatabaseUrl:
    """The database the settings name (or `url`, one of their replicas), with their read
    timeout, and the password given apart when the URL names none."""
    parsed = parse_database_url(settings.db_url if url is None else url)
    parsed = dataclasses.replace(parsed, read_timeout=settings.read_timeout)
    password = settings.password() if scheme_of(parsed).password_apart and not parsed.password else None
    return dataclasses.replace(parsed, password=password) if password else parsed


def load_settings(config_file: str | None = None) -> Settings:
    path = Path(config_file or os.environ.get("IMGSEARCH_CONFIG") or DEFAULT_CONFIG_FILE)
    values: dict[str, Any] = {}
    parser = configparser.ConfigParser(interpolation=None)
    if path.exists():
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as e:
            raise ImgsearchError(f"cannot read {path}: {e.message.splitlines()[0]}") from None
    elif config_file:
        raise ImgsearchError(f"config file {path} does not exist")
    for source in SOURCES:
        if parser.has_option(source.section, source.key) and parser.get(source.section, source.key).strip():
            raw = parser.get(source.section, source.key).strip()
            values[source.name] = source.convert(raw, f"{path} [{source.section}] {source.key}")
        if os.environ.get(source.env, "").strip():
            values[source.name] = source.convert(os.environ[source.env].strip(), source.env)
    return Settings(**values)
