"""The report's page-1 fields: where they come from, and the one line that names those still unset."""

from __future__ import annotations

from doodlelab.pipeline.report.settings import report_fields, unset_fields_note


def test_fields_come_from_the_environment_then_the_overrides():
    env = {"DOODLELAB_AUTHOR": "  Ada Lovelace ", "DOODLELAB_CODE_URL": ""}
    fields = report_fields(None, ["report.code_url=https://example.org/x.git", "train.epochs=3"], env=env)
    assert fields == {"author": "Ada Lovelace", "student_number": None,
                      "code_url": "https://example.org/x.git"}


def test_the_note_names_exactly_the_unset_fields_and_their_variables():
    note = unset_fields_note({"author": "Ada Lovelace", "student_number": None, "code_url": ""})
    assert note is not None and "\n" not in note
    assert "student_number, code_url" in note and "author" not in note.split(":")[0]
    assert "DOODLELAB_STUDENT_NUMBER, DOODLELAB_CODE_URL" in note and "DOODLELAB_AUTHOR" not in note


def test_no_note_when_page_one_is_complete():
    full = {"author": "A", "student_number": "1", "code_url": "https://example.org"}
    assert unset_fields_note(full) is None
