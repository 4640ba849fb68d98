import apache_beam as beam
import numpy as np
import pytest
import soundfile as sf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.audio import AudioLimits
from pipelines.records import AudioSource, Utterance
from pipelines.steps.decode import REJECTS, Decoded, DecodeFn, audio_hash
from tests.pipelines.steps.conftest import SR, counters, flac, run, wave

LIMITS = AudioLimits(min_s=0.5, max_s=5.0)


def _utt(id_: str, path, start_s: float | None = None, end_s: float | None = None) -> Utterance:
    return Utterance(
        id_, "librispeech", "dev", "9901", "TEXT", AudioSource(str(path), start_s, end_s)
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, tuple[Utterance, str | np.ndarray]]:
    """Real speech and damaged copies of it: ``{id: (utterance, reason or expected wave)}``."""
    tmp = tmp_path_factory.mktemp("decode")
    speech = wave("9901-99011-0000")
    sf.write(tmp / "stereo.wav", np.stack([speech, speech / 2], axis=1), SR, subtype="FLOAT")
    sf.write(tmp / "quiet.wav", speech * 1e-3, SR, subtype="FLOAT")
    sf.write(tmp / "nan.wav", np.where(np.arange(len(speech)) == 99, np.nan, speech), SR, "FLOAT")
    real = flac("9902-99021-0001").read_bytes()
    (tmp / "cut.flac").write_bytes(real[: len(real) // 3])
    (tmp / "empty.flac").write_bytes(b"")
    return {
        "whole": (_utt("whole", flac("9902-99021-0001")), wave("9902-99021-0001")),
        "segment": (_utt("segment", flac("9901-99011-0000"), 0.5, 2.0), speech[8000:32000]),
        "stereo": (_utt("stereo", tmp / "stereo.wav"), (speech + speech / 2) / 2),
        "long": (_utt("long", flac("9906-99061-0000")), "too_long"),
        "short": (_utt("short", flac("9901-99011-0000"), 0.0, 0.3), "too_short"),
        "quiet": (_utt("quiet", tmp / "quiet.wav"), "silent"),
        "nan": (_utt("nan", tmp / "nan.wav"), "decode_error"),
        "cut": (_utt("cut", tmp / "cut.flac"), "decode_error"),
        "empty": (_utt("empty", tmp / "empty.flac"), "decode_error"),
        "missing": (_utt("missing", tmp / "missing.flac"), "missing_audio"),
        "backwards": (_utt("backwards", flac("9901-99011-0000"), 2.0, 1.0), "bad_segment"),
    }


def test_process_yields_the_wave_or_a_tagged_reject(inputs):
    utt, expected = inputs["segment"]
    (decoded,) = DecodeFn(LIMITS).process(utt)
    assert isinstance(decoded, Decoded) and decoded.utt == utt
    np.testing.assert_array_equal(decoded.wave, expected)
    assert decoded.audio_hash == audio_hash(expected)
    (tagged,) = DecodeFn(LIMITS).process(inputs["long"][0])
    assert tagged.tag == REJECTS and tagged.value.reason == "too_long"
    assert tagged.value.source == inputs["long"][0].source and tagged.value.stage == "decode"


def test_decode_fn_outputs_rejects_and_counters(inputs):
    kept = {k: w for k, (_, w) in inputs.items() if not isinstance(w, str)}
    rejected = {k: r for k, (_, r) in inputs.items() if isinstance(r, str)}
    p = TestPipeline()
    out = (
        p
        | beam.Create([utt for utt, _ in inputs.values()])
        | beam.ParDo(DecodeFn(LIMITS)).with_outputs(REJECTS, main="ok")
    )
    assert_that(
        out.ok | beam.Map(lambda d: (d.utt.id, len(d.wave), d.audio_hash)),
        equal_to([(k, len(w), audio_hash(w)) for k, w in kept.items()]),
        label="decoded",
    )
    assert_that(
        out[REJECTS] | beam.Map(lambda r: (r.id, r.reason, r.stage, r.source.path)),
        equal_to([(k, r, "decode", inputs[k][0].source.path) for k, r in rejected.items()]),
        label="rejects",
    )
    got = counters(run(p), "decode")
    assert got == {
        "decoded": 3,
        "audio_ms": sum(len(w) * 1000 // SR for w in kept.values()),
        "rejected_too_long": 1,
        "rejected_too_short": 1,
        "rejected_silent": 1,
        "rejected_decode_error": 3,
        "rejected_missing_audio": 1,
        "rejected_bad_segment": 1,
    }
    rejects = sum(n for name, n in got.items() if name.startswith("rejected_"))
    assert got["decoded"] + rejects == len(inputs)


def test_audio_hash_ignores_float_noise_below_16_bits():
    speech = wave("9902-99021-0001")
    assert audio_hash(speech) == audio_hash(speech + 1e-7)
    assert audio_hash(speech) != audio_hash(speech[1:])
