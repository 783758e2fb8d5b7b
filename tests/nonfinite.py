"""Every float field a user fills, found by walking the models rather than listed: the finite bound is then
checked on each field, including any added later."""

from __future__ import annotations

import math
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

NON_FINITE = [math.inf, -math.inf, math.nan]


def _leaves(annotation: Any) -> list[Any]:
    """The types an annotation is made of: list[Annotated[float, ...]] | None -> [.., float, None]."""
    return [annotation, *(leaf for arg in get_args(annotation) for leaf in _leaves(arg))]


def _holding(annotation: Any, value: float) -> Any:
    """A value of the annotation's shape whose one float is `value` (list[list[float]] -> [[value]]); None
    when it holds no float."""
    if annotation is float:
        return value
    for arg in get_args(annotation):
        inner = _holding(arg, value)
        if inner is not None:
            return [inner] if get_origin(annotation) is list else inner
    return None


def float_fields(*roots: type[BaseModel]) -> list[tuple[type[BaseModel], str]]:
    """(model, field) for each field holding a float, in the roots and every model reachable from them."""
    seen: set[type[BaseModel]] = set()
    found: list[tuple[type[BaseModel], str]] = []
    todo = list(roots)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            leaves = _leaves(info.annotation)
            todo += [t for t in leaves if isinstance(t, type) and issubclass(t, BaseModel)]
            if float in leaves:
                found.append((model, name))
    return found


def finite_errors(model: type[BaseModel], field: str, value: float) -> list[dict[str, Any]]:
    """The errors saying that `value` in `field` is not a finite number (none: the model took it)."""
    try:
        model.model_validate({field: _holding(model.model_fields[field].annotation, value)})
    except ValidationError as err:
        return [e for e in err.errors() if e["loc"][:1] == (field,) and e["type"] == "finite_number"]
    return []
