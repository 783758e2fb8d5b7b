"""A spec as the workbench's editor holds it: YAML or JSON text, read with the position of every field, so a
problem found in the parsed spec can be shown at its line.

Anchors and aliases are refused: an alias is a shared reference, and a few lines of them nested expand
into billions of elements for the validator to walk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from indexer.model.strict import clip


@dataclass(frozen=True)
class Position:
    """1-based line and column of a field in the text."""

    line: int
    column: int


@dataclass(frozen=True)
class ParsedText:
    """The text's data and the composed YAML tree it came from, for locating fields."""

    data: Any
    root: yaml.Node


class SpecTextError(ValueError):
    """The text is not a YAML/JSON mapping; `position` is where the reader stopped, when known."""

    def __init__(self, message: str, position: Position | None = None) -> None:
        super().__init__(message)
        self.position = position


def _mark_position(mark: Any) -> Position | None:
    return Position(mark.line + 1, mark.column + 1) if mark is not None else None


def _refuse_aliases(root: yaml.Node) -> None:
    """Raise at the first node reached twice (an alias of an anchor), walking each node once."""
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise SpecTextError("YAML anchors and aliases are not accepted: write the values out",
                                _mark_position(node.start_mark))
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


# libyaml's loader where PyYAML was built with it: composing the tree is most of the cost, about 3x faster in C
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_spec_text(text: str) -> ParsedText:
    """The text's mapping, with its YAML tree; SpecTextError with a position for anything else.

    Reading costs about 5 s a MiB for a long flow list: the API bounds the text (MAX_SPEC_TEXT_CHARS)."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SpecTextError("the spec is empty: write a YAML or JSON mapping", Position(1, 1))
        _refuse_aliases(root)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as err:
        what = " ".join(part for part in (err.context, err.problem) if part) or "syntax error"
        raise SpecTextError(f"not valid YAML/JSON: {clip(' '.join(what.split()))}",
                            _mark_position(err.problem_mark or err.context_mark)) from None
    except yaml.YAMLError as err:
        raise SpecTextError(f"not valid YAML/JSON: {clip(' '.join(str(err).split()))}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise SpecTextError("the spec nests too deeply to read") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise SpecTextError("the spec must be a mapping (name: ..., dataset: ..., backends: ...)",
                            _mark_position(root.start_mark))
    return ParsedText(data=data, root=root)


def locate(root: yaml.Node, loc: Sequence[str | int]) -> Position:
    """Where the deepest field of `loc` that exists in the text begins.

    Parts the text does not hold are skipped, not followed: pydantic adds a union's tag to a location
    (`backends.0.hnswlib.M`), and a missing field is reported at the mapping that lacks it.
    """
    node = root
    for part in loc:
        child = _child(node, part)
        if child is not None:
            node = child
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                # a scalar value points at its key, so the line shown names the field
                return key if isinstance(value, yaml.ScalarNode) else value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None
