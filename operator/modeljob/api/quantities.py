"""The ModelJob API's written forms (parameter counts, quantities, durations): parse, check, explain.

Each form is checked twice with the same regular expression: by a pydantic validator (so
`modeljob estimate` and the operator refuse what the API server would) and by a CEL rule in the
CRD. The CRD carries the CEL rule and no OpenAPI `pattern`, because the API server answers a
failed `pattern` with the expression itself, while a CEL rule answers with its message: a
sentence naming the field and showing the forms it takes. The patterns use `[.]`, never a
backslash, so that they read the same inside a CEL string literal.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue, ValidationInfo, WithJsonSchema

from modeljob.core.jobs import MAX_PARAMETERS, MIN_PARAMETERS
from modeljob.core.resources import QuantityError, parse_count


def cel_rule(
    rule: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, JsonValue]:
    """One `x-kubernetes-validations` entry; field_path makes the API server name the field."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


# --- parameter counts ------------------------------------------------------------------------

_FRACTION = "(?:[.][0-9]+)?"
# Every written form, each bounded to [MIN_PARAMETERS, MAX_PARAMETERS] = [1M, 100T], so that the
# API server checks the range by pattern alone (CEL cannot parse "70.6B"). Suffixes are capitals:
# a lower-case m is "milli" in Kubernetes quantities, so "8b" or "7m" is refused, not guessed.
PARAMETERS_PATTERN = (
    "^(?:"
    + "|".join(
        (
            "[1-9][0-9]{6,13}",  # 1000000 .. 99999999999999
            f"[1-9][0-9]{{3,10}}{_FRACTION}K",  # 1000K ..
            f"[1-9][0-9]{{0,7}}{_FRACTION}M",  # 1M ..
            f"[1-9][0-9]{{0,4}}{_FRACTION}[BG]",  # 1B .. 99999.9B
            "0[.]0{0,2}[1-9][0-9]*[BG]",  # 0.001B .. 0.99B, e.g. Qwen2.5-0.5B
            f"(?:[1-9][0-9]?{_FRACTION}|100)T",  # 1T .. 100T
            "0[.]0{0,5}[1-9][0-9]*T",  # 0.000001T .. 0.99T
            f"[1-9]{_FRACTION}[eE][+]?(?:[6-9]|1[0-3])",  # 1e6 .. 9.9e13
            f"[1-9][0-9]{_FRACTION}[eE][+]?(?:[5-9]|1[0-2])",  # 10e5 .. 99.9e12
            f"[1-9][0-9]{{2}}{_FRACTION}[eE][+]?(?:[4-9]|1[01])",  # 100e4 .. 999.9e11
        )
    )
    + ")$"
)


def _count_text(count: int) -> str:
    """1000000 -> '1M': the bounds written as a user writes a count."""
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count % scale == 0:
            return f"{count // scale}{suffix}"
    return str(count)


PARAMETERS_FORMS = (
    "a parameter count such as 7B, 70.6B, 0.5B, 560M or 7e9 (suffixes K, M, B, T in capitals) "
    f"or a whole number such as 7000000000, from {_count_text(MIN_PARAMETERS)} "
    f"to {_count_text(MAX_PARAMETERS)}"
)

# Kubernetes resource.Quantity grammar (apimachinery quantity.go), without signs.
QUANTITY_PATTERN = "^(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)(?:[eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
BYTES_FORMS = "a Kubernetes quantity such as 80Gi, 512Mi or 100G (Ki, Mi, Gi, Ti or k, M, G, T; no B)"
CPU_FORMS = "a Kubernetes CPU quantity such as 4, 1.5 or 500m"

DURATION_PATTERN = "^(?:[0-9]+(?:[.][0-9]+)?(?:ms|s|m|h|d))+$"
DURATION_FORMS = "a duration such as 2h, 90m, 1h30m or 1.5d (units ms, s, m, h, d)"
_DURATION_PART = re.compile("([0-9]+(?:[.][0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

_MAX_TEXT = 32  # bounds the CEL cost estimate of `matches`, and no real value is longer


def _check_parameters(value: object) -> int | str:
    wrong = f"must be {PARAMETERS_FORMS}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise ValueError(wrong)
    if isinstance(value, str) and not re.match(PARAMETERS_PATTERN, value.strip()):
        raise ValueError(wrong)
    try:
        count = parse_count(value)
    except QuantityError:
        raise ValueError(wrong) from None
    if not MIN_PARAMETERS <= count <= MAX_PARAMETERS:
        raise ValueError(wrong)
    return value if isinstance(value, str) else count


def _check_quantity(value: object, info: ValidationInfo) -> int | str:
    forms = CPU_FORMS if info.field_name == "cpu" else BYTES_FORMS
    wrong = f"must be {forms}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise ValueError(wrong)
    if isinstance(value, str) and not re.match(QUANTITY_PATTERN, value.strip()):
        raise ValueError(wrong)
    if isinstance(value, int | float) and value < 0:
        raise ValueError(wrong)
    return value if isinstance(value, str) else int(value)


def _check_duration(value: str) -> str:
    if not re.match(DURATION_PATTERN, value):
        raise ValueError(f"must be {DURATION_FORMS}; got {value!r}")
    return value


def _int_or_string() -> dict[str, Any]:
    # The only anyOf form structural schemas allow for int-or-string; the field's CEL rule checks
    # the string form (OpenAPI applies maxLength to strings only).
    return {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "maxLength": _MAX_TEXT,
    }


ParameterCount = Annotated[int | str, BeforeValidator(_check_parameters), WithJsonSchema(_int_or_string())]
Quantity = Annotated[int | str, BeforeValidator(_check_quantity), WithJsonSchema(_int_or_string())]
Duration = Annotated[
    str, AfterValidator(_check_duration), WithJsonSchema({"type": "string", "maxLength": _MAX_TEXT})
]


def parameters_field(path: str, description: str, **field: Any) -> Any:
    """A ParameterCount field whose CRD rule names `path` in its message."""
    rule = cel_rule(
        f"type(self) == string ? self.matches('{PARAMETERS_PATTERN}')"
        f" : (int(self) >= {MIN_PARAMETERS} && int(self) <= {MAX_PARAMETERS})",
        f"{path} must be {PARAMETERS_FORMS}",
    )
    return Field(description=description, json_schema_extra={"x-kubernetes-validations": [rule]}, **field)


def quantity_field(path: str, description: str, *, forms: str = BYTES_FORMS) -> Any:
    """An optional Quantity field whose CRD rule names `path` and shows `forms` in its message."""
    rule = cel_rule(
        f"type(self) == string ? self.matches('{QUANTITY_PATTERN}') : int(self) >= 0",
        f"{path} must be {forms}",
    )
    return Field(
        default=None, description=description, json_schema_extra={"x-kubernetes-validations": [rule]}
    )


def duration_field(path: str, description: str) -> Any:
    """An optional Duration field whose CRD rule names `path` in its message."""
    rule = cel_rule(f"self.matches('{DURATION_PATTERN}')", f"{path} must be {DURATION_FORMS}")
    return Field(
        default=None, description=description, json_schema_extra={"x-kubernetes-validations": [rule]}
    )


def parse_duration(text: str) -> timedelta:
    """Parse 2h, 90m, 1h30m, 1.5d into a timedelta."""
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)
