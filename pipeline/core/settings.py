"""Typed settings: one pydantic schema per params section, owned by the code that reads it.

Every params section — ``run``, ``corpora.<name>``, ``segment``, ``transcripts``, ``embed``,
``backbones.<name>``, ``heads.<name>`` — is parsed by a :class:`Settings` subclass before any work
starts. The schema is the only place a default lives; code reads attributes, never ``dict.get``
with a fallback. :func:`parse` turns pydantic's report into one line a researcher can act on:

- an unknown key names the section, the key, the closest valid key and the valid keys
  (``params.yaml: heads.logreg: unknown key 'speakernorm' (did you mean 'speaker_norm'?) ...``);
- a wrong type or value names the key, the value and what is allowed
  (``params.yaml: heads.logreg.class_weight = 'banana': Input should be 'balanced' or None``).

YAML 1.1 reads ``5e-5`` as a string; pydantic's lax mode turns it into the float it means.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.core.errors import ConfigError

PARAMS_FILE = "params.yaml"

S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """Base of every params schema: unknown keys are errors, values are validated, instances frozen."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, protected_namespaces=(), validate_default=True, populate_by_name=True
    )

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """Plain JSON-compatible dict of every setting, defaults included (for hashes and records)."""
        return self.model_dump(mode="json", **kwargs)

    def replace(self: S, **changes: Any) -> S:
        """A validated copy with ``changes`` applied (settings are frozen); unset fields stay unset."""
        return type(self).model_validate({**self.model_dump(exclude_unset=True), **changes})


def parse(schema: type[S], data: Any, where: str, source: str = PARAMS_FILE) -> S:
    """Validate ``data`` (a params section) against ``schema``; errors become one ConfigError line.

    ``where`` is the section's dotted path (``heads.logreg``), ``source`` the file it came from.
    """
    if isinstance(data, schema):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where} must be a mapping of options, got {data!r}")
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_error(schema, err, where, source)) from None


_SCALAR_TAGS = {"int", "float", "str", "bool", "none", "bytes", "is-instance"}


def _model_names(cls: type = BaseModel) -> set[str]:
    names = set()
    for sub in cls.__subclasses__():
        names |= {sub.__name__} | _model_names(sub)
    return names


def _key_path(loc: tuple, models: set[str]) -> list[str]:
    """``loc`` without pydantic's union-branch tags (``literal['last']``, ``int``, model names)."""
    return [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in _SCALAR_TAGS or p in models))]


def describe_error(schema: type[BaseModel], err: ValidationError, where: str, source: str = PARAMS_FILE) -> str:
    """The first problem of a validation error as one line (the number of further problems appended).

    A value that fits no branch of a union (``layer: last | best | <int>``) gives one error per
    branch; those are merged into one line listing what each branch allows.
    """
    models = _model_names()
    problems = err.errors(include_url=False)
    by_key: dict[tuple[str, ...], list[dict]] = {}
    for p in problems:
        by_key.setdefault(tuple(_key_path(p["loc"], models)), []).append(p)
    # A misspelt key also makes the key it was meant to be "missing": name the typo, the cause, first.
    loc, group = next((item for item in by_key.items() if item[1][0]["type"] == "extra_forbidden"),
                      next(iter(by_key.items())))
    loc = list(loc)
    first = group[0]
    more = f" (and {len(by_key) - 1} more problem{'s' if len(by_key) > 2 else ''})" if len(by_key) > 1 else ""
    if first["type"] == "extra_forbidden":
        key = loc[-1]
        section = ".".join([where, *loc[:-1]])
        valid = fields_at(schema, loc[:-1])
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{source}: {section}: unknown key '{key}'{hint}; valid keys: {', '.join(valid)}{more}"
    key = ".".join([where, *loc]) if loc else where
    value = first.get("input")
    msgs = [p["msg"].removeprefix("Value error, ") for p in group]
    msg = " or ".join(dict.fromkeys(m.removeprefix("Input should be ") if i else m for i, m in enumerate(msgs)))
    if first["type"] == "missing":
        return f"{source}: {key} is required ({msg.lower()}){more}"
    if not loc:  # a check across several keys
        return f"{source}: {key}: {msg}{more}"
    return f"{source}: {key} = {value!r}: {msg}{more}"


def fields_at(schema: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model at ``loc`` inside ``schema`` (best effort; [] if unknown)."""
    model: Any = schema
    skip_key = False
    for part in loc:
        if part.isdigit() or skip_key:  # a list index or a dict key: stay on the element model
            skip_key = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        skip_key = typing.get_origin(annotation) is dict
        model = _model_of(annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    """The BaseModel inside ``X | None``, ``list[X]`` or ``dict[str, X]`` annotations, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
    return annotation
