"""The hard-gate detectors on the cases they exist for, and on good writing they must spare."""

from __future__ import annotations

from graph.gates import defects, grounding, on_topic


def test_hashtags_after_the_last_sentence_do_not_read_as_a_cut_off() -> None:
    post = "Passkeys cut our login support tickets by a third.\nStart today! #Security #Passkeys"
    assert defects.find_truncation(post, "social_post") is None
    assert defects.find_truncation("Passkeys cut our login support tickets by the #Security", "social_post")


def test_a_sentence_said_three_times_is_a_loop_but_twice_is_not() -> None:
    said = "Resource limits keep one noisy pod from starving the node."
    assert defects.find_repetition(" ".join([said] * 3))
    assert defects.find_repetition(" ".join([said] * 2)) is None


def test_keywords_match_on_word_boundaries_only() -> None:
    assert on_topic.missing_keywords("The report said little.", ["ai"]) == ["ai"]
    assert on_topic.missing_keywords("How AI agents plan work.", ["ai", "agent"]) == []


def test_urls_count_as_invented_unless_a_source_or_the_request_has_them() -> None:
    sources = [{"url": "https://docs.python.org/3/library/asyncio.html"}]
    text = ("See https://docs.python.org/3/library/asyncio.html and http://www.docs.python.org/3/library/asyncio.html/ "
            "and https://example.com/made-up and https://acme.test/book.")
    assert grounding.invented_urls(text, sources, "Book at https://acme.test/book") == ["https://example.com/made-up"]


def test_placeholders_are_found_but_citations_and_links_are_not() -> None:
    text = "Hi [First Name], see [1] and [our docs](https://a.test). Lorem ipsum. Growth was XX%."
    assert defects.find_placeholders(text) == ["[First Name]", "Lorem ipsum", "XX%"]


def test_a_chatty_opening_is_a_preamble() -> None:
    assert defects.find_preamble("Sure! Here is a blog post about tea.\n\n# Tea")
    assert defects.find_preamble("# Here's why tea matters\n\nTea is old.") is None
