import dataclasses

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.records import AudioSource, Utterance
from pipelines.steps.decode import Decoded, audio_hash
from pipelines.steps.extract import UnitModelHandler, length_buckets
from speechinstruct.extractors import ExtractorSpec, UnitExtractor
from tests.pipelines.steps.conftest import TEXTS, counters, distribution, flac, run, wave

SPEC = ExtractorSpec("mfcc")
IDS = (
    "9906-99061-0000",
    "9908-99081-0000",
    "9901-99011-0003",
    "9902-99021-0001",
    "9907-99071-0001",
)


def _decoded(id_: str) -> Decoded:
    utt = Utterance(
        id_, "librispeech", "test-real", id_[:4], TEXTS[id_], AudioSource(str(flac(id_)))
    )
    w = wave(id_)
    return Decoded(utt, w, audio_hash(w))


def _alone(km: str) -> dict[str, list[int]]:
    """Each utterance's units from the extractor called on it alone."""
    extractor = UnitExtractor(SPEC, km)
    return {i: extractor([wave(i)])[0].tolist() for i in IDS}


def test_length_buckets_bound_the_padded_size():
    lengths = [50, 10, 30, 20, 45]
    groups = length_buckets(lengths, 60)
    assert groups == [[1, 3], [2], [4], [0]]
    assert all(max(lengths[i] for i in g) * len(g) <= 60 for g in groups)


def test_run_inference_keeps_batch_order_across_buckets(km):
    handler = UnitModelHandler(SPEC, km, max_batch_seconds=4.0)
    batch = [_decoded(i) for i in IDS]
    model = handler.load_model()
    results = handler.run_inference(batch, model)
    assert [r.example for r in results] == batch
    assert {r.example.utt.id: r.inference.tolist() for r in results} == _alone(km)
    assert {r.model_id for r in results} == {model.centroids_hash}
    assert handler.get_num_bytes(batch) == sum(d.wave.nbytes for d in batch)


def test_unit_model_handler_in_run_inference(km):
    """Beam's batches of at most 2 waves, however it makes them up: every utterance gets the
    units it gets alone; RunInference counts every example and the bytes of every wave."""
    batch = [_decoded(i) for i in IDS]
    p = TestPipeline()
    units = (
        p
        | beam.Create(batch)
        | RunInference(UnitModelHandler(SPEC, km, batch_size=2, max_batch_seconds=4.0))
        | beam.Map(lambda r: (r.example.utt.id, r.inference.tolist(), r.inference.dtype.kind))
    )
    assert_that(units, equal_to([(i, u, "i") for i, u in _alone(km).items()]))
    result = run(p)
    assert counters(result, "RunInference") == {"num_inferences": len(IDS)}
    sizes = distribution(result, "RunInference", "inference_request_batch_size")
    assert sizes.sum == len(IDS) and sizes.max <= 2
    byte_sizes = distribution(result, "RunInference", "inference_request_batch_byte_size")
    assert byte_sizes.sum == sum(d.wave.nbytes for d in batch)


def test_model_is_shared_on_gpu_or_when_copied(km):
    assert not UnitModelHandler(SPEC, km).share_model_across_processes()
    copied = UnitModelHandler(SPEC, km, model_copies=2)
    assert copied.share_model_across_processes() and copied.model_copies() == 2
    gpu = UnitModelHandler(dataclasses.replace(SPEC, device="cuda"), km)
    assert gpu.share_model_across_processes() and gpu.model_copies() == 1
    assert UnitModelHandler(SPEC, km, batch_size=7).batch_elements_kwargs() == {
        "min_batch_size": 1,
        "max_batch_size": 7,
    }
