"""``speechgpt web`` on a released-layout cm + com pair (``learned_release``), in the
browser: a typed question gets the answer the model learned, with no control strings on
the page, and a playable wav."""

import pytest
from playwright.sync_api import expect

from speechinstruct.extractors import ExtractorSpec, UnitExtractor
from tests.browser import ANSWER_S, serve
from training.generate import Settings, Talker
from training.released import CONTROL_STRINGS
from vocoder import load_vocoder


@pytest.fixture(scope="module")
def url(learned_release, released_vocoder, kmeans_1000, tmp_path_factory):
    cm, com = learned_release
    extractor = UnitExtractor(ExtractorSpec("mfcc"), kmeans_1000)
    settings = Settings(max_text_tokens=40, max_units=24)
    talker = Talker.load(str(cm), str(com), extractor, load_vocoder(released_vocoder), settings)
    assert talker.style == "released"  # the tokenizer has no <eoa> token
    with serve(talker, tmp_path_factory.mktemp("answers")) as address:
        yield address


def test_typed_question_gets_the_learned_answer_in_the_browser(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#send")).to_be_visible(timeout=30_000)
    page.fill("#question-text textarea", "What is the capital of France?")
    page.check('#reply-mode input[value="speech"]')
    page.click("#send")
    answer = page.locator("#chat .bot-row")
    expect(answer.locator("audio")).to_have_count(1, timeout=ANSWER_S)
    expect(page.locator("#status")).to_contain_text("Answered", timeout=ANSWER_S)
    shown = " ".join(answer.first.inner_text().split())
    assert "[ta] Paris is the capital." in shown
    assert not any(c in shown.replace("[ta]", "") for c in CONTROL_STRINGS), shown
    context.close()
