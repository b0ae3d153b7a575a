"""`NAME[:P1,P2,...]` specifications of learned maps and re-rankings: parsed, and every
parameter checked against its range, so a bad one is one clear line, never a traceback
or a silently different method. Defaults live in each function's signature."""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imgsearch.errors import ImgsearchError

Value = int | float


@dataclass(frozen=True)
class Check:
    """What values a parameter takes, said the way the error message says it."""

    text: str
    ok: Callable[[float], bool]


WHOLE_POSITIVE = Check("a whole number >= 1", lambda v: float(v).is_integer() and v >= 1)
WHOLE_OR_ZERO = Check("a whole number >= 0", lambda v: float(v).is_integer() and v >= 0)
NON_NEGATIVE = Check("a number >= 0", lambda v: v >= 0)
POSITIVE = Check("a number > 0", lambda v: v > 0)
FRACTION = Check("a number from 0 to 1", lambda v: 0 <= v <= 1)
OPEN_FRACTION = Check("a number between 0 and 1, both excluded", lambda v: 0 < v < 1)


@dataclass(frozen=True)
class Param:
    name: str
    default: Value
    check: Check


@dataclass(frozen=True)
class Method:
    """A registered method: its function, whose first `skip` arguments are data and whose
    other arguments are its parameters, each with a default and a check (keyword-only
    arguments are the caller's options, not parameters a user sets)."""

    function: Callable[..., Any]
    description: str
    params: tuple[Param, ...]
    supervised: bool = False

    @classmethod
    def of(cls, function: Callable[..., Any], description: str, checks: Mapping[str, Check], skip: int = 2,
           supervised: bool = False) -> Method:
        signature = [p for p in list(inspect.signature(function).parameters.values())[skip:]
                     if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        missing = {p.name for p in signature} ^ set(checks)
        assert not missing, f"{function.__name__}: parameters and checks differ on {missing}"
        return cls(function, description, tuple(Param(p.name, p.default, checks[p.name]) for p in signature),
                   supervised)

    def usage(self, name: str) -> str:
        return f"{name}[:{','.join(p.name for p in self.params)}]" if self.params else name


@dataclass(frozen=True)
class Spec:
    """A parsed specification: the method's name and every parameter's value by name."""

    name: str
    values: dict[str, Value]
    text: str


def parse_spec(text: str, registry: Mapping[str, Method]) -> Spec:
    """'aqe:10' -> Spec('aqe', {'n': 10}); missing parameters take their defaults. The name
    must be in the registry; every value within its range."""
    name, _, rest = text.strip().partition(":")
    if name not in registry:
        raise ImgsearchError(f"unknown method {name!r} in {text!r}; known: {', '.join(registry)}")
    method = registry[name]
    raw = [p.strip() for p in rest.split(",")] if rest.strip() else []
    if len(raw) > len(method.params):
        raise ImgsearchError(f"{text!r}: {name} takes at most {len(method.params)} parameters: {method.usage(name)}")
    values: dict[str, Value] = {p.name: p.default for p in method.params}
    for param, given in zip(method.params, raw):
        try:
            number = float(given)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or not param.check.ok(number):
            raise ImgsearchError(f"{text!r}: {param.name} of {name} must be {param.check.text}, not {given!r} "
                                 f"({method.usage(name)})")
        values[param.name] = int(number) if number.is_integer() and isinstance(param.default, int) else number
    return Spec(name, values, text.strip())
