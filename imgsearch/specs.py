"""`NAME[:P1,P2,...]` specifications of learned maps and re-rankings: parsed, and every
parameter checked against its range, so a bad one is one clear line, never a traceback
or a silently different method. Defaults live in each function's signature."""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imgsearch.errors import ImgsearchError

Value = int | float


# One number grammar for every specification: ASCII digits, no sign, no leading zero; a
# number that need not be whole may have a decimal point with digits after it, or be
# written 1e-6 (one digit before the point, an exponent from -1 to -99: every such value is
# between 0 and 1). Python's float() also reads "1_0", "٣", " 5", "1e3" and "inf"; none of
# them is a number here.
WHOLE = r"0|[1-9][0-9]*"
_SMALL = r"[1-9](?:\.[0-9]+)?e-[1-9][0-9]?"  # above 0, below 1 (1e-99 at the least: no underflow)
NUMBER = rf"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?|{_SMALL}"
_POSITIVE_FRACTION = rf"0\.[0-9]*[1-9][0-9]*|{_SMALL}"  # above 0, below 1


@dataclass(frozen=True)
class Check:
    """What values a parameter takes: said the way the error message says it, as the
    predicate the parser applies to a value of the grammar, and as the regular expression
    of exactly those texts, which the service's published spec carries (tests check that
    the two agree). Every range is bounded where a larger value only costs (time, or
    weights that overflow)."""

    text: str
    ok: Callable[[float], bool]
    pattern: str  # the accepted texts, without anchors
    whole: bool = False

    def reads(self, given: str) -> float | None:
        """The value of `given` where it is one this parameter takes, else None."""
        if not re.fullmatch(WHOLE if self.whole else NUMBER, given):
            return None
        value = float(given)
        return value if self.ok(value) else None


def whole_below(digits: int, low: int = 1) -> Check:
    """A whole number from low (0 or 1) to 10^digits - 1."""
    high = 10**digits - 1
    pattern = f"[1-9][0-9]{{0,{digits - 1}}}"
    return Check(f"a whole number from {low} to {high}", lambda v: low <= v <= high,
                 pattern if low == 1 else f"0|{pattern}", whole=True)


def number_below(digits: int, above_zero: bool = False) -> Check:
    """A number from 0 (or above 0) to below 10^digits."""
    high = 10**digits
    integral = f"[1-9][0-9]{{0,{digits - 1}}}(?:\\.[0-9]+)?"
    if above_zero:
        return Check(f"a number above 0 and below {high}", lambda v: 0 < v < high,
                     f"{integral}|{_POSITIVE_FRACTION}")
    return Check(f"a number from 0 to below {high}", lambda v: 0 <= v < high,
                 f"0(?:\\.[0-9]+)?|{integral}|{_SMALL}")


FRACTION = Check("a number from 0 to 1", lambda v: 0 <= v <= 1, rf"0(?:\.[0-9]+)?|1(?:\.0+)?|{_SMALL}")
OPEN_FRACTION = Check("a number between 0 and 1, both excluded", lambda v: 0 < v < 1, _POSITIVE_FRACTION)
POSITIVE_FRACTION = Check("a number above 0 and at most 1", lambda v: 0 < v <= 1,
                          f"{_POSITIVE_FRACTION}|1(?:\\.0+)?")


def spec_pattern(name: str, params: tuple[Param, ...]) -> str:
    """The texts `NAME[:P1,...]` of a method, its parameters each as its check takes them."""
    tail = ""
    for param in reversed(params[1:]):
        tail = f"(?:,(?:{param.check.pattern}){tail})?"
    assert re.fullmatch(r"[a-z0-9-]+", name), name  # literal in every regular expression dialect
    return name + (f"(?::(?:{params[0].check.pattern}){tail})?" if params else "")


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
    name, sep, rest = text.partition(":")
    if name not in registry:
        raise ImgsearchError(f"unknown method {name!r} in {text!r}; known: {', '.join(registry)}")
    method = registry[name]
    if sep and not rest:
        raise ImgsearchError(f"{text!r}: nothing after the colon; give {method.usage(name)}, or {name} alone for "
                             "its defaults")
    raw = rest.split(",") if sep else []
    if len(raw) > len(method.params):
        raise ImgsearchError(f"{text!r}: {name} takes at most {len(method.params)} parameters: {method.usage(name)}")
    values: dict[str, Value] = {p.name: p.default for p in method.params}
    for param, given in zip(method.params, raw):
        value = param.check.reads(given)
        if value is None:
            raise ImgsearchError(f"{text!r}: {param.name} of {name} must be {param.check.text}, not {given!r} "
                                 f"({method.usage(name)})")
        values[param.name] = int(value) if param.check.whole else value
    return Spec(name, values, text)
