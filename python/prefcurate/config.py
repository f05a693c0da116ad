"""Stage configs: the one place where a stage parameter, its default, its
check and its help text are written.

A stage config is a frozen dataclass whose fields are made with
:func:`param`.  The Python API builds it from keywords
(``DedupConfig(threshold=0.9)``), a TOML recipe section parses into it
(:meth:`StageConfig.from_mapping`), and the CLI generates its options from it
(:meth:`StageConfig.add_arguments` / :meth:`StageConfig.from_args`), so the
three cannot drift.  Every check runs in ``__post_init__``: an invalid value
is an :class:`~prefcurate.errors.InvalidInputError` naming the stage, the
parameter and what is accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from .errors import InvalidInputError

C = TypeVar("C", bound="StageConfig")

#: A check returns an error message (what is accepted) or None when the value is fine.
Check = Callable[[Any], str | None]


def param(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    choices: Sequence[Any] | None = None,
    cli: bool = True,
    metavar: str | tuple[str, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """A config field: its default, help text and check.

    ``choices`` restricts the value (and the CLI option); ``parse`` turns a
    CLI string into the value (default: the type of the default);
    ``convert`` normalises a value given from Python or TOML (a list into a
    tuple, say) before it is checked; ``cli=False`` keeps it out of the CLI
    (Python objects such as a keep policy list)."""
    meta = {
        "help": help,
        "check": check,
        "choices": tuple(choices) if choices is not None else None,
        "cli": cli,
        "metavar": metavar,
        "parse": parse,
        "convert": convert,
    }
    return dataclasses.field(default=default, metadata=meta)


# ---------------------------------------------------------------- checks


def in_range(lo: float, hi: float, *, integer: bool = False, allow_none: bool = False) -> Check:
    """A number in ``[lo, hi]`` (an integer when ``integer``)."""

    def check(v: Any) -> str | None:
        if v is None and allow_none:
            return None
        kind = "an integer" if integer else "a number"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{kind} in [{lo}, {hi}]"
        if integer and not float(v).is_integer():
            return f"{kind} in [{lo}, {hi}]"
        if not math.isfinite(float(v)) or not lo <= v <= hi:
            return f"{kind} in [{lo}, {hi}]"
        return None

    return check


def is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def optional_str(v: Any) -> str | None:
    return None if v is None or isinstance(v, str) else "a str or nothing"


def is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a str"


def _describe(v: Any) -> str:
    if isinstance(v, tuple):
        return " ".join(map(str, v))
    if v is None:
        return "none"
    return str(v).lower() if isinstance(v, bool) else str(v)


# ---------------------------------------------------------------- base


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base of every stage config (see the module docstring)."""

    #: the stage's name, as in removed rows' ``stage`` column and recipes
    stage: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            conv = f.metadata.get("convert")
            if conv is not None and v is not None:
                try:
                    nv = conv(v)
                except (TypeError, ValueError):
                    nv = v  # the check below explains what is accepted
                if nv is not v:
                    object.__setattr__(self, f.name, nv)
                    v = nv
            choices = f.metadata.get("choices")
            if choices is not None and v not in choices:
                raise InvalidInputError(
                    f"{self.stage}: {f.name} must be one of {', '.join(map(repr, choices))}, got {v!r}"
                )
            check = f.metadata.get("check")
            if check is not None:
                want = check(v)
                if want is not None:
                    raise InvalidInputError(f"{self.stage}: {f.name} must be {want}, got {v!r}")
        self.validate()

    def validate(self) -> None:
        """Checks across fields (a subclass's own rules)."""

    # -- building

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls: type[C], values: Mapping[str, Any], *, where: str = "") -> C:
        """From a dict (a TOML section): unknown keys are an error naming the known ones."""
        known = cls.names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InvalidInputError(
                f"{where or cls.stage}: unknown setting(s) {unknown}; known: {', '.join(known)}"
            )
        return cls(**dict(values))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values (tuples as lists), for summaries and caches."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    # -- command line

    @classmethod
    def add_arguments(
        cls, parser: argparse.ArgumentParser, *, exclude: Sequence[str] = (), prefix: str = ""
    ) -> None:
        """One option per CLI field, with the help text and the default shown.
        Options default to ``None`` (not given): :meth:`from_args` then keeps
        the config's default, so a default is written once."""
        for f in dataclasses.fields(cls):
            if not f.metadata.get("cli", True) or f.name in exclude:
                continue
            flag = "--" + prefix + f.name.rstrip("_").replace("_", "-")
            default = f.default
            shown = _describe(default)
            kw: dict[str, Any] = {"dest": prefix.replace("-", "_") + f.name, "default": None}
            help_text = f"{f.metadata['help']} (default: {shown})"
            if isinstance(default, bool):
                kw["action"] = argparse.BooleanOptionalAction
            elif isinstance(default, tuple):
                kw["nargs"] = len(default)
                kw["type"] = type(default[0])
                kw["metavar"] = (
                    f.metadata.get("metavar") or tuple(x.upper() for x in ("min", "max"))[: len(default)]
                )
            else:
                parse = f.metadata.get("parse")
                if parse is not None:
                    kw["type"] = parse
                elif default is not None and not isinstance(default, str):
                    kw["type"] = type(default)
                if f.metadata.get("choices") is not None:
                    kw["choices"] = f.metadata["choices"]
                if f.metadata.get("metavar"):
                    kw["metavar"] = f.metadata["metavar"]
            parser.add_argument(flag, help=help_text, **kw)

    @classmethod
    def from_args(cls: type[C], args: argparse.Namespace, *, prefix: str = "", **fixed: Any) -> C:
        """The config from parsed options (those not given keep the default),
        plus ``fixed`` values the command sets itself."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            v = getattr(args, prefix.replace("-", "_") + f.name, None)
            if v is not None:
                values[f.name] = tuple(v) if isinstance(v, list) else v
        values.update(fixed)
        return cls(**values)
