"""Spec files (YAML or JSON) read and validated into the schema models, with one-line messages that name
every wrong field."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import InputError
from .job import ZooJobSpec
from .study import StudySpec

#: what pydantic puts into an error's location for the member of a union tried (not field names), besides model
#: names (capitalised) and validator or type labels (``function-after[...]``, ``list[float]``)
UNION_LABELS = ("box", "file", "str", "none", "l1", "lp", "tl1", "float", "int", "bool", "list", "dict")


def _is_label(part) -> bool:
    text = str(part)
    return not isinstance(part, int) and (text in UNION_LABELS or "[" in text or text[:1].isupper())
SpecModel = TypeVar("SpecModel", bound=BaseModel)


def validation_message(source: str, error: ValidationError, known_fields: set[str] | None = None) -> InputError:
    """A pydantic error as one line naming every wrong field: ``spec.yaml: field 'method': …; …``."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"] if not _is_label(part))
        message = item["msg"]
        if item["type"] == "extra_forbidden" and known_fields is not None:
            close = difflib.get_close_matches(str(item["loc"][-1]), sorted(known_fields), n=1, cutoff=0.6)
            message = "unknown field" + (f"; did you mean '{close[0]}'?" if close else "")
        problems.append(f"field '{field or '(top level)'}': {message}")
    return InputError(source, "; ".join(problems))


def field_names(schema: type[BaseModel]) -> set[str]:
    """Every field name of ``schema`` and of the models nested in it (for "did you mean" suggestions)."""
    names: set[str] = set()
    pending, seen = [schema], set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            names.add(field.alias or name)
            pending.extend(_models_in(field.annotation))
    return names


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def parse_spec(source: str, text: str, schema: type[SpecModel]) -> SpecModel:
    """``text`` (YAML or JSON) validated as ``schema``; InputError naming ``source`` and every wrong field."""
    try:
        mapping = yaml.safe_load(text)  # YAML is a superset of JSON
        return schema.model_validate(mapping)
    except yaml.YAMLError as error:
        raise InputError(source, f"not valid YAML/JSON ({error})") from None
    except ValidationError as error:
        raise validation_message(source, error, field_names(schema)) from None
    except RecursionError:
        raise InputError(source, "nested too deeply to be a spec") from None


def read_spec_file(path: str | Path, schema: type[SpecModel]) -> SpecModel:
    """Parse ``path`` (YAML or JSON) and validate it as ``schema``. Raises InputError naming the wrong fields."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "spec file not found" if not path.exists() else "not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(str(path), f"cannot be read ({error})") from None
    return parse_spec(str(path), text, schema)


def read_job_spec(path: str | Path) -> ZooJobSpec:
    """Parse and validate a job spec file (YAML or JSON). Raises InputError naming the wrong fields."""
    return read_spec_file(path, ZooJobSpec)


def read_study_spec(path: str | Path) -> StudySpec:
    """Parse and validate a study spec file (YAML or JSON). Raises InputError naming the wrong fields."""
    return read_spec_file(path, StudySpec)
