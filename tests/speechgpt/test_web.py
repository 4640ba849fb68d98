"""``speechgpt web`` in a real browser: Debian's chromium, headless, driven by Playwright,
against the app served on a free localhost port with the tiny stage-3 model."""

import pytest
import soundfile as sf
from playwright.sync_api import expect

from schemas import SAMPLE_RATE
from speechgpt import web
from speechinstruct.extractors import ExtractorSpec, UnitExtractor
from tests.browser import ANSWER_S, serve
from training.generate import Settings, Talker, load_wave
from vocoder import load_vocoder
from vocoder.data import read_clips


@pytest.fixture(scope="module")
def talker(stages, made, baseline_vocoder):
    extractor = UnitExtractor(ExtractorSpec("mfcc"), made["km"])
    settings = Settings(max_text_tokens=12, max_units=30)
    return Talker.load(stages[2], stages[3], extractor, load_vocoder(baseline_vocoder), settings)


@pytest.fixture(scope="module")
def question(made, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("web") / "question.wav"
    sf.write(path, read_clips(made["units"])[0][0].audio(), SAMPLE_RATE, subtype="PCM_16")
    return str(path)


@pytest.fixture(scope="module")
def url(talker, tmp_path_factory):
    with serve(talker, tmp_path_factory.mktemp("answers")) as address:
        yield address


@pytest.fixture
def page(browser, url):
    """A fresh tab (its own conversation) with the app loaded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#send")).to_be_visible(timeout=30_000)
    yield page
    context.close()


def test_spoken_question_gets_text_and_a_playable_spoken_answer(page, talker, question, tmp_path):
    talker.reset()  # greedy decoding: the page must show exactly what the talker says
    expected = talker.turn(wave=load_wave(question), reply="speech")
    talker.reset()
    assert expected.audio is not None

    page.click('#question-audio [aria-label="Upload file"]')
    page.locator("#question-audio input[type=file]").set_input_files(question)
    page.check('#reply-mode input[value="speech"]')
    page.click("#send")

    answer = page.locator("#chat .bot-row")
    player = answer.locator("audio")
    expect(player).to_have_count(1, timeout=ANSWER_S)
    expect(page.locator("#status")).to_contain_text("Answered", timeout=ANSWER_S)
    shown = " ".join(answer.first.inner_text().split())  # the page wraps and collapses spaces
    for label, said in (("[tq]", expected.transcript), ("[ta]", expected.text)):
        assert f"{label} {' '.join(said.split()) or '(nothing)'}" in shown
    # the browser decoded the answer's wav: its length is the vocoder's
    player.evaluate("a => a.readyState >= 1 || new Promise(r => a.onloadedmetadata = r)")
    duration = player.evaluate("a => a.duration")
    assert duration == pytest.approx(len(expected.audio) / SAMPLE_RATE, abs=1e-3)  # exact, to 1 ms
    expect(page.locator("#chat .user-row audio")).to_have_count(1)  # the question, to replay
    page.screenshot(path=tmp_path / "web.png", full_page=True)

    page.click("#reset")
    expect(page.locator("#status")).to_contain_text("cleared", timeout=30_000)
    expect(page.locator("#chat .bot-row")).to_have_count(0)


def test_bad_input_is_explained_in_the_page(page):
    page.click("#send")
    expect(page.locator("#status")).to_contain_text(web.NO_INPUT, timeout=ANSWER_S)
    page.fill("#question-text textarea", "   ")
    page.click("#send")
    expect(page.locator("#status")).to_contain_text("the text is empty", timeout=ANSWER_S)
    expect(page.locator("#chat .bot-row")).to_have_count(0)
