"""One schema for every setting: the type, range or choices of each field of a settings
dataclass, checked before anything is built or written.

A field declares its rule with :func:`setting`::

    @dataclass
    class TrainConfig:
        lr: float = setting(1e-3, above=0)
        batch_size: int = setting(32, at_least=1)
        early_stop: float | None = setting(None, above=0, at_most=1, optional=True)

:func:`check` then validates a mapping of raw values (from YAML or ``--set``) against the
dataclass: unknown keys, wrong types, values out of range, each as one line that names the key,
the value and what is valid (``train.lr = 'abc': expected a number > 0``). Whole floats become
ints where an int is expected (YAML reads ``1e3`` as a float); ints become floats.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Upper bounds of the settings that size data, models and training: far beyond the paper's
# largest (sequences of 16,384, widths of 1,024, a few hundred thousand steps), so that a slip
# (1e9 for 1e3) is refused in one line before anything is built, not run for days or out of memory.
MAX_LENGTH = 2**20  # tokens in a sequence, delays, kernel lengths
MAX_WIDTH = 2**16  # widths, states, heads, vocabularies, pairs, batch sizes
MAX_COUNT = 10**7  # examples, steps, intervals


class ConfigError(ValueError):
    """A configuration the user asked for cannot be built (a setting outside its schema, a
    file that is not valid YAML...); the message is one line."""


def read_settings(path: Path) -> dict:
    """The mapping in YAML file ``path``; a file that is not a YAML mapping is a one-line
    :class:`ConfigError` naming the file and the line."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}{line}: {problem}; fix or restore that file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(data).__name__}")
    return data


def number(x: float) -> str:
    """``x`` as a reader writes it: ``4294967296``, ``0.5``, ``6.28319``."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


@dataclass(frozen=True)
class Rule:
    """What one setting accepts: ``kind`` (int, float, bool, str or "pair" for two floats),
    bounds (``above`` / ``below`` exclusive, ``at_least`` / ``at_most`` inclusive), ``choices``
    for strings, and whether ``None`` is allowed."""

    kind: type | str
    above: float | None = None
    below: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False

    def describe(self) -> str:
        """What is valid, in words: ``a whole number ≥ 1``, ``one of: a, b``, ``true or false``."""
        if self.choices is not None:
            valid = f"one of: {', '.join(self.choices)}"
        elif self.kind is bool:
            valid = "true or false"
        elif self.kind == "pair":
            valid = "two numbers in [0, 1), e.g. [0.9, 0.999]"
        else:
            valid = "a whole number" if self.kind is int else "a number"
            bounds = [
                f"{sign} {number(bound)}"
                for sign, bound in (
                    (">", self.above),
                    ("≥", self.at_least),
                    ("<", self.below),
                    ("≤", self.at_most),
                )
                if bound is not None
            ]
            valid = " ".join([valid, " and ".join(bounds)]).strip()
        return valid + (" (or null)" if self.optional else "")

    def _in_range(self, x: float) -> bool:
        return (
            (self.above is None or x > self.above)
            and (self.below is None or x < self.below)
            and (self.at_least is None or x >= self.at_least)
            and (self.at_most is None or x <= self.at_most)
        )

    def _number(self, value: Any) -> float | None:
        """``value`` as a finite number of this rule's kind, or None if it is not one."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        if self.kind is int:
            return int(value) if float(value).is_integer() else None
        return float(value)

    def normalise(self, key: str, value: Any) -> Any:
        """``value`` checked against the rule and in its canonical type; raises
        :class:`ConfigError` naming ``key``, the value and what is valid."""
        if value is None and self.optional:
            return None
        ok: Any = None
        if self.choices is not None:
            ok = value if isinstance(value, str) and value in self.choices else None
        elif self.kind is bool:
            ok = value if isinstance(value, bool) else None
        elif self.kind == "pair":
            if isinstance(value, list | tuple) and len(value) == 2:
                pair = [Rule(float, at_least=0, below=1)._number(v) for v in value]
                if all(p is not None and 0 <= p < 1 for p in pair):
                    ok = tuple(pair)
        elif self.kind is str:
            ok = value if isinstance(value, str) and value else None
        else:
            number = self._number(value)
            ok = number if number is not None and self._in_range(number) else None
        if ok is None:
            raise ConfigError(f"{key} = {value!r}: expected {self.describe()}")
        return ok


def setting(default: Any, kind: type | str | None = None, **rule: Any) -> Any:
    """A dataclass field with ``default`` and the :class:`Rule` of its values (``kind``
    defaults to the type of ``default``)."""
    kind = kind or (str if rule.get("choices") else type(default))
    meta = {"rule": Rule(kind, **rule)}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def rules(cls) -> dict[str, Rule]:
    """The rule of every field of dataclass ``cls`` that declares one."""
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls) if "rule" in f.metadata}


def check(
    spec, values: Mapping[str, Any], where: str, skip: tuple[str, ...] = (), owner: str = ""
) -> dict:
    """``values`` checked and normalised against ``spec``: a settings dataclass (its fields but
    those in ``skip``, which are checked elsewhere), or a class whose ``OPTIONS`` maps each name
    to its :class:`Rule` (a mixer). ``where`` prefixes the keys in messages (``train.``).
    Raises :class:`ConfigError` in one line for an unknown key (``owner`` names what the keys
    belong to) or a value outside its rule."""
    if dataclasses.is_dataclass(spec):
        by_name = rules(spec)
        names = [f.name for f in dataclasses.fields(spec) if f.name not in skip]
    else:
        by_name = dict(spec.OPTIONS)
        names = list(by_name)
    if not isinstance(values, Mapping):
        example = f"{where}{names[0]}=..." if names else "nothing"
        raise ConfigError(
            f"{where.rstrip('.')} = {values!r}: expected a mapping of settings, e.g. {example}"
        )
    out = {}
    for key, value in values.items():
        if key not in names:
            valid = ", ".join(names) or "none"
            raise ConfigError(f"unknown setting {where + str(key)!r}{owner}; valid here: {valid}")
        rule = by_name.get(key)
        out[key] = value if rule is None else rule.normalise(f"{where}{key}", value)
    return out


def validate(obj, where: str) -> None:
    """Check every ruled field of dataclass instance ``obj`` in place (normalising its type;
    frozen dataclasses too): call it from ``__post_init__``. ``where`` prefixes the keys in
    messages (``train.``)."""
    for name, rule in rules(type(obj)).items():
        object.__setattr__(obj, name, rule.normalise(f"{where}{name}", getattr(obj, name)))
