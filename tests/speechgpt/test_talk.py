"""``speechgpt talk`` and ``eval-speech`` with the tiny stage-3 model, MFCC units and the
baseline vocoder, on real TTS speech from the sample corpora."""

import numpy as np
import pytest
import soundfile as sf

from schemas import SAMPLE_RATE
from speechgpt import talk
from speechinstruct.extractors import ExtractorSpec, UnitExtractor
from speechinstruct.templates import ASSISTANT, STANDARD, parse, parse_answer, segments
from speechinstruct.units import reduce
from training import generate
from training.generate import Settings, Talker, TalkError
from vocoder import HOP, load_vocoder
from vocoder.data import read_clips

SMALL = Settings(max_text_tokens=12, max_units=30)


@pytest.fixture(scope="module")
def talker(stages, made, baseline_vocoder):
    extractor = UnitExtractor(ExtractorSpec("mfcc"), made["km"])
    return Talker.load(stages[2], stages[3], extractor, load_vocoder(baseline_vocoder), SMALL)


@pytest.fixture(scope="module")
def question(made):
    clip = read_clips(made["units"])[0][0]
    return clip.audio()


def test_spoken_question_gets_a_parsable_spoken_answer(talker, question):
    talker.reset()
    turn = talker.turn(wave=question, reply="speech")
    assert isinstance(turn.transcript, str) and isinstance(turn.text, str)
    assert 1 <= len(turn.units) <= SMALL.max_units
    assert all(0 <= u < 16 for u in turn.units)
    durations = np.maximum(1, np.rint(talker.vocoder.durations[turn.units])).astype(int)
    assert len(turn.audio) == durations.sum() * HOP
    # the answer the model now remembers is in the chain-of-modality form, and holds the turn
    answer = talker.st.tok.decode(talker.history[-1], skip_special_tokens=False)
    answer = answer[answer.index("[SpeechGPT]: ") + len("[SpeechGPT]: ") :]
    assert answer.startswith("[tq]") and answer.endswith("<eoa>")
    parsed = parse_answer(answer)
    assert parsed["ua"] == turn.units
    assert parsed["ta"].strip() == turn.text and parsed["tq"].strip() == turn.transcript


def test_standard_prompting_answers_straight_in_speech_or_text(talker, question):
    """``prompting="standard"`` (Appendix E, §6.1): the question is ``std_s2s``'s or
    ``std_t2t``'s, the answer is ``[ua]`` units alone or ``[ta]`` text alone (no ``[tq]``),
    and each remembered turn parses back with the standard templates into what was said."""
    standard = Talker(
        talker.model, talker.st.tok, talker.extractor, talker.vocoder, SMALL, prompting="standard"
    )
    spoken = standard.turn(wave=question, reply="speech")
    assert spoken.transcript is None and spoken.text == ""
    assert 1 <= len(spoken.units) <= SMALL.max_units and spoken.audio is not None
    typed = standard.turn(text="Name a colour.", reply="text")
    assert typed.transcript is None and typed.units == [] and typed.audio is None

    asked = reduce(talker.extractor([question])[0])[0].tolist()
    expected = [
        ("std_s2s", {"speech_instruction": asked, "speech_response": spoken.units}),
        ("std_t2t", {"text_instruction": "Name a colour.", "text_response": typed.text}),
    ]
    for ids, (name, fields) in zip(standard.history, expected, strict=True):
        said = standard.st.tok.decode(ids, skip_special_tokens=False)
        cut = said.index(ASSISTANT) + len(ASSISTANT)
        assert parse(said[:cut], said[cut:], STANDARD) == (name, fields)
    with pytest.raises(ValueError, match="chain-of-modality prompting only"):
        Talker(talker.model, talker.st.tok, None, None, style="released", prompting="standard")


def test_text_reply_has_no_speech_and_history_grows(talker):
    talker.reset()
    first = talker.turn(text="What is the capital of France?", reply="text")
    assert first.units == [] and first.audio is None and first.transcript is None
    talker.turn(text="And of Spain?", reply="text")
    assert len(talker.history) == 2 and first.dropped == 0


def test_oldest_turns_are_dropped_to_fit_the_context(talker, question):
    talker.reset()
    talker.turn(text="Tell me about bees.", reply="text")
    talker.turn(text="And about ants?", reply="text")
    lengths = list(map(len, talker.history))
    window = talker.window
    asked = "Which is bigger?"
    question = talker.st.encode(segments("t2t", **generate._blank({"text_instruction": asked}))[0])
    room = 3 * SMALL.max_text_tokens + SMALL.max_units + 16
    try:  # a window with room for the newest earlier turn only
        talker.window = len(talker.head) + len(question) + room + lengths[1]
        turn = talker.turn(text=asked, reply="text")
    finally:
        talker.window = window
    assert turn.dropped == 1 and len(talker.history) == 2


def test_bad_input_says_what_is_wrong(talker, tmp_path):
    with pytest.raises(TalkError, match="silent"):
        talker.turn(wave=np.zeros(SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(TalkError, match=r"shorter than 0\.1 s"):
        talker.turn(wave=np.zeros(10, dtype=np.float32))
    with pytest.raises(TalkError, match="limit is 60 s"):
        generate.check_wave(np.ones(SAMPLE_RATE * 61, dtype=np.float32) * 0.1)
    with pytest.raises(TalkError, match="empty"):
        talker.turn(text="   ")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(TalkError, match=r"cannot read junk\.wav"):
        generate.load_wave(junk)
    with pytest.raises(TalkError, match="no such audio file"):
        generate.load_wave(tmp_path / "missing.wav")


def test_talk_command_writes_the_answer_wav(stages, made, baseline_vocoder, tmp_path, capsys):
    question = read_clips(made["units"])[0][1]
    wav = tmp_path / "q.wav"
    sf.write(wav, question.audio(), SAMPLE_RATE)
    out = tmp_path / "answer.wav"
    turn = talk.run(
        [
            "--model",
            stages[2],
            "--lora",
            stages[3],
            "--kmeans",
            made["km"],
            "--vocoder",
            baseline_vocoder,
            "--wav",
            str(wav),
            "--out",
            str(out),
            "--max-units",
            "20",
            "--max-text-tokens",
            "8",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == f"answer text: {turn.text}" and lines[-1] == f"answer wav: {out}"
    wave, sr = sf.read(out)
    assert sr == SAMPLE_RATE and len(wave) == len(turn.audio)
