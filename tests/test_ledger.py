"""The reproduction ledger (chapters/ledger/*.yaml) is the one source of every chapter's claims table.

Fails when a row breaks the schema or the status/tag vocabulary, names a result its chapter does not publish, points
at a section the chapter does not have, claims a status its own condition refutes on the committed numbers, or when a
chapter's printed claims table differs from the one the ledger gives.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from docutils.nodes import make_id

from ambridge.book import ledger

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.md") if re.match(r"^\d+_", p.stem))
ROWS = ledger.load_ledger()


def _anchor(title: str) -> str:
    """The id docutils gives a section (ASCII-folded, lower case, runs of other characters → one hyphen), from the
    heading's text as rendered (markup characters dropped)."""
    return make_id(re.sub(r"[`*$\\{}]", "", title))


def test_the_ledger_covers_the_paper():
    assert len(ROWS) >= 25, f"only {len(ROWS)} claims in the ledger"
    assert {r.chapter for r in ROWS} == set(CHAPTERS), "every chapter has ledger rows, and every file is a chapter"
    assert any(r.status == "not reproduced" for r in ROWS) or any(r.status == "partly" for r in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_each_row_names_a_published_result_a_real_section_and_a_status_its_numbers_support(row):
    results = ledger.published_results(row.chapter)
    if row.result:
        assert row.result in results, f"{row.chapter} does not publish `{row.result}` (run make execute)"
        ledger.book_value(row, results)  # the format applies
    md = (ROOT / "chapters" / f"{row.chapter}.md").read_text()
    anchors = {_anchor(h) for h in re.findall(r"^#{1,4} (.+)$", md, re.M)}
    assert row.anchor in anchors, f"{row.id}: no section `{row.anchor}` in {row.chapter} ({sorted(anchors)})"
    assert ledger.evaluate(row, results) in (None, True), \
        f"{row.id}: status {row.status!r} but `{row.holds_if}` fails on value {results.get(row.result)!r}"


def _printed_claims(chapter: str) -> str:
    nb = nbformat.read(ROOT / "chapters" / f"{chapter}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "claims_table(" in cell.source:
            for out in cell.get("outputs", []):
                if "data" in out and "text/markdown" in out["data"]:
                    return out["data"]["text/markdown"]
    raise AssertionError(f"{chapter} prints no claims table from the ledger (claims_table)")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_chapters_claims_table_is_the_ledgers(chapter):
    expected = ledger.claims_table(chapter, ledger.published_results(chapter), ROWS)
    assert _printed_claims(chapter).strip() == expected.data.strip(), \
        f"{chapter}'s claims table differs from its ledger rows: re-execute it (make execute CHAPTER=…)"
    source = jupytext.read(ROOT / "chapters" / f"{chapter}.md")
    assert any("publish_results(" in c.source for c in source.cells if c.cell_type == "code")


BAD_ROWS = [
    ({"status": "holds"}, "status"),
    ({"tag": "paper-ish"}, "tag"),
    ({"status": "partly", "reason": ""}, "reason"),
    ({"id": "Not Kebab"}, "kebab"),
    ({"colour": "red"}, "unknown field"),
    ({"holds_if": "value <"}, "expression"),
    ({"result": None, "holds_if": "value > 0"}, "needs the `result`"),
]


@pytest.mark.parametrize("change, message", BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_a_broken_row_is_refused_with_a_message(tmp_path, change, message):
    row = {"id": "x-one", "claim": "c", "tag": "paper", "source": "s", "anchor": "a", "status": "reproduced",
           "result": "r"}
    row.update(change)
    (tmp_path / "99_x.yaml").write_text(yaml.safe_dump([{k: v for k, v in row.items() if v is not None}]))
    with pytest.raises(ledger.LedgerError, match=message):
        ledger.load_ledger(tmp_path)


def test_an_unpublished_result_and_a_failing_condition_are_caught():
    row = ledger.Row(chapter="99_x", id="x", claim="c", tag="paper", source="s", anchor="a", status="reproduced",
                     result="gap", holds_if="value < 1e-9")
    with pytest.raises(ledger.LedgerError, match="did not publish `gap`"):
        ledger.evaluate(row, {})
    assert ledger.shown_status(row, {"gap": 1e-12}) == "reproduced"
    assert ledger.shown_status(row, {"gap": 0.5}) == "not reproduced"
    table = ledger.claims_table("99_x", {"gap": 0.5}, [row]).data
    assert "**not reproduced**" in table and "fails on the published value" in table
