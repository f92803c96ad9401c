"""Client-sent names in serving errors: quoted, and short enough that an answer stays one line."""

from keel.serving.service import SHOWN_CHARACTERS, quoted


def test_a_short_name_is_its_repr():
    assert quoted("serving_default") == "'serving_default'" and quoted("3") == "'3'"


def test_a_long_name_is_cut_and_says_how_long_it_was():
    text = quoted("x" * 5000)
    assert len(text) <= SHOWN_CHARACTERS and text.endswith("... (5000 characters)") and text.startswith("'xxx")
