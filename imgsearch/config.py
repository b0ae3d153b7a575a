"""One Settings object from defaults < config.ini < IMGSEARCH_* environment < flags."""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from imgsearch.errors import ImgsearchError

DEFAULT_CONFIG_FILE = "config.ini"

# (section, key in config.ini, environment variable, Settings field, type)
_SOURCES = (
    ("database", "url", "IMGSEARCH_DB_URL", "db_url", str),
    ("collection", "folder", "IMGSEARCH_FOLDER", "folder", str),
    ("build", "extractors", "IMGSEARCH_BUILD_EXTRACTORS", "build_extractors", "list"),
    ("build", "workers", "IMGSEARCH_WORKERS", "workers", int),
    ("build", "batch_size", "IMGSEARCH_BATCH_SIZE", "batch_size", int),
    ("query", "extractor", "IMGSEARCH_EXTRACTOR", "extractor", str),
    ("query", "metric", "IMGSEARCH_METRIC", "metric", str),
    ("query", "top_k", "IMGSEARCH_TOP_K", "top_k", int),
    ("query", "block_rows", "IMGSEARCH_BLOCK_ROWS", "block_rows", int),
    ("query", "parallel", "IMGSEARCH_PARALLEL", "parallel", int),
    ("build", "pack_rows", "IMGSEARCH_PACK_ROWS", "pack_rows", int),
    ("cnn", "max_side", "IMGSEARCH_CNN_MAX_SIDE", "cnn_max_side", int),
    ("cnn", "multiscale", "IMGSEARCH_CNN_MULTISCALE", "cnn_multiscale", "bool"),
)


@dataclass(frozen=True)
class Settings:
    db_url: str | None = None  # None: the embedded SQLite default
    folder: str | None = None
    build_extractors: tuple[str, ...] = ("rgb", "hsv72")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 256
    extractor: str = "hsv72"
    metric: str = "pearson"
    top_k: int = 10
    block_rows: int = 1024
    parallel: int = 1  # scan connections; more only helps where the server has cores to spare
    pack_rows: int = 1024  # vectors per packed row
    # Longer side of the network's input (rounded to a multiple of 32); 256 measured best
    # per cost on Corel-1k (GeM mAP 0.885 at 224, 0.891 at 256, 0.892 at 320, 0.893 at 384).
    cnn_max_side: int = 256
    cnn_multiscale: bool = False  # average over scales 1, 1/sqrt 2, sqrt 2 (3x the work)

    def with_flags(self, **flags: Any) -> Settings:
        """Flags given on the command line (None means not given) override the rest."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None and v != ()})


def _convert(raw: str, kind: Any, where: str) -> Any:
    if kind == "list":
        return tuple(x.strip() for x in raw.split(",") if x.strip())
    if kind == "bool":
        if raw.lower() in ("1", "yes", "true", "on"):
            return True
        if raw.lower() in ("0", "no", "false", "off"):
            return False
        raise ImgsearchError(f"{where}: {raw!r} is not yes/no")
    try:
        return kind(raw)
    except ValueError:
        raise ImgsearchError(f"{where}: {raw!r} is not a valid {kind.__name__}") from None


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
    for section, key, env, name, kind in _SOURCES:
        if parser.has_option(section, key) and parser.get(section, key).strip():
            values[name] = _convert(parser.get(section, key).strip(), kind, f"{path} [{section}] {key}")
        if os.environ.get(env, "").strip():
            values[name] = _convert(os.environ[env].strip(), kind, env)
    return Settings(**values)
