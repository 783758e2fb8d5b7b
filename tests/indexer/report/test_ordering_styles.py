"""Every registered ordering has its own fixed look in the report's figures, and no style is left over."""

from __future__ import annotations

from indexer.report.figures import ORDERING_STYLE
from indexer.science.orderings import ORDERINGS


def test_every_registered_ordering_has_a_style() -> None:
    assert set(ORDERINGS) - set(ORDERING_STYLE) == set()


def test_every_style_belongs_to_a_registered_ordering() -> None:
    assert set(ORDERING_STYLE) - set(ORDERINGS) == set()


def test_no_two_orderings_look_alike() -> None:
    styles = list(ORDERING_STYLE.values())
    assert len(set(styles)) == len(styles)
