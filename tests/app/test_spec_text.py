"""Reading the editor's spec text: positions of fields, YAML errors at their line, aliases refused."""

from __future__ import annotations

import pytest

from app.spec_text import Position, SpecTextError, locate, parse_spec_text

TEXT = """# a comment
name: located
dataset:
  kind: synthetic
  intrinsic_dims: [2, 8]
backends:
  - {name: hnswlib, M: 0}
  - name: exact
"""


@pytest.mark.parametrize(("loc", "where"), [
    (("name",), Position(2, 1)),  # a scalar's key, so the line names the field
    (("dataset", "kind"), Position(4, 3)),
    (("dataset", "intrinsic_dims", 1), Position(5, 23)),
    (("backends", 0, "hnswlib", "M"), Position(7, 21)),  # the union's tag is not in the text: skipped
    (("backends", 1, "exact", "name"), Position(8, 5)),
    (("dataset", "missing"), Position(4, 3)),  # a field the text lacks: the mapping that lacks it
    (("backends", 7), Position(7, 3)),
    ((), Position(2, 1)),
])
def test_locate(loc: tuple[str | int, ...], where: Position) -> None:
    assert locate(parse_spec_text(TEXT).root, loc) == where


def test_json_is_read_too() -> None:
    parsed = parse_spec_text('{\n  "name": "j",\n  "k": 0\n}')
    assert parsed.data == {"name": "j", "k": 0}
    assert locate(parsed.root, ("k",)).line == 3


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("name: x\ndataset: {kind: synthetic\n", 3, "not valid YAML/JSON"),
    ("a: &anchor [1, 2]\nb: *anchor\n", 1, "anchors and aliases are not accepted"),
    ("", 1, "empty"),
    ("- just\n- a list\n", 1, "must be a mapping"),
])
def test_errors_come_with_a_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(SpecTextError, match=needle) as caught:
        parse_spec_text(text)
    assert caught.value.position is not None and caught.value.position.line == line


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    with pytest.raises(SpecTextError, match="aliases"):
        parse_spec_text("\n".join(levels))
