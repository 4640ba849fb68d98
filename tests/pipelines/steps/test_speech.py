import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.records import AudioSource
from pipelines.steps.decode import audio_hash
from pipelines.steps.speech import SpeakFn, T2UModelHandler, TextToUnits, voice_for
from speechinstruct.extractors import ExtractorSpec, UnitExtractor
from speechinstruct.t2u.model import T2U
from speechinstruct.tts import FLITE_VOICES, speak
from speechinstruct.units import reduce
from tests.pipelines.steps.conftest import SR, TEXTS, counters, run

SPEC = ExtractorSpec("mfcc")
ITEMS = [
    ("moss_000001|instruction", TEXTS["9908-99081-0000"]),
    ("moss_000001|response", TEXTS["9909-99091-0000"]),
    ("moss_000002|instruction", "Hi"),
    ("moss_000002|response", "!!! 42"),  # nothing T2U reads: no units
]


def test_t2u_handler_generates_each_text_as_alone(t2u):
    handler = T2UModelHandler(t2u, batch_size=len(ITEMS))
    assert handler.batch_elements_kwargs() == {"min_batch_size": 4, "max_batch_size": 4}
    assert not handler.share_model_across_processes()
    model = handler.load_model()
    results = handler.run_inference(ITEMS, model)
    assert [r.example for r in results] == ITEMS
    assert [r.inference for r in results] == [model.generate([text])[0] for _, text in ITEMS]
    assert results[0].inference and results[3].inference == []


def test_text_to_units_with_t2u(t2u):
    expected = T2U.load(t2u).generate([text for _, text in ITEMS])
    p = TestPipeline()
    units = p | beam.Create(ITEMS) | TextToUnits("t2u", t2u, SPEC, None)
    assert_that(units, equal_to([(key, u) for (key, _), u in zip(ITEMS, expected, strict=True)]))
    assert counters(run(p), "RunInference") == {"num_inferences": len(ITEMS)}


def test_speak_fn_process():
    key, text = ITEMS[1]
    (decoded,) = SpeakFn().process((key, text))
    voice = voice_for(key)
    wave, sr = speak(text, voice)
    assert sr == SR and voice in FLITE_VOICES
    np.testing.assert_array_equal(decoded.wave, wave)
    assert decoded.audio_hash == audio_hash(wave)
    utt = decoded.utt
    assert (utt.id, utt.corpus, utt.speaker, utt.text) == (key, "tts", voice.name, text)
    assert utt.source == AudioSource(f"tts:{voice.name}")
    assert len({voice_for(k) for k, _ in ITEMS}) > 1  # speakers vary with the key


def test_text_to_units_with_tts(km):
    items = ITEMS[:3]
    extractor = UnitExtractor(SPEC, km)
    expected = [
        (key, reduce(extractor([speak(text, voice_for(key))[0]])[0])[0].tolist())
        for key, text in items
    ]
    p = TestPipeline()
    units = p | beam.Create(items) | TextToUnits("tts", None, SPEC, km)
    assert_that(units, equal_to(expected))
    result = run(p)
    assert counters(result, "RunInference") == {"num_inferences": len(items)}
    assert counters(result, "speech") == {"spoken": len(items)}
    assert all(u for _, u in expected)


@pytest.mark.parametrize(
    ("backend", "t2u", "km", "needs"),
    [("t2u", None, "km.npy", "--t2u"), ("tts", "t2u", None, "--kmeans")],
)
def test_text_to_units_says_what_its_backend_needs(backend, t2u, km, needs):
    with pytest.raises(ValueError, match=needs):
        TextToUnits(backend, t2u, SPEC, km)
