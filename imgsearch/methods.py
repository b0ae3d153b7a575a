"""`NAME[:P1,P2,...]` specifications of learned and re-ranking methods."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from imgsearch.errors import ImgsearchError


def parse_method(spec: str, registry: dict[str, Any]) -> tuple[str, list[int | float]]:
    """'aqe:10' -> ('aqe', [10]); 'diffusion' -> ('diffusion', []). Names must be in the registry."""
    name, _, params = spec.partition(":")
    if name not in registry:
        raise ImgsearchError(f"unknown method {name!r}; known: {', '.join(registry)}")
    try:
        values = [float(p) for p in params.split(",") if p]
    except ValueError:
        raise ImgsearchError(f"method parameters must be numbers: {spec!r}") from None
    return name, [int(v) if v.is_integer() else v for v in values]


def filled_params(spec: str, fn: Callable[..., Any], params: list[int | float]) -> dict[str, int | float]:
    """The parameters by name: the given ones, then fn's defaults for the rest (fn's first
    two arguments, the query and database matrices, are not parameters). The eval
    functions' signatures are the one place defaults live."""
    names_defaults = [(p.name, p.default) for p in list(inspect.signature(fn).parameters.values())[2:]]
    if len(params) > len(names_defaults):
        raise ImgsearchError(f"{spec}: takes at most {len(names_defaults)} parameters")
    return {name: params[i] if i < len(params) else default for i, (name, default) in enumerate(names_defaults)}
