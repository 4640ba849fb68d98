"""A learning test: beyond "the loss falls", stage 2 must make a tiny model reproduce its
four training responses exactly, decoded greedily by the code ``eval`` uses.

A label shift, a mask off by one or a template that differs between training and
inference lets the loss fall and fails this. The model is the ``parrot`` fixture
(tests/training/conftest.py).
"""

from transformers import AutoModelForCausalLM, AutoTokenizer

from speechinstruct.templates import CROSS_MODAL, parse
from training import evaluate
from training.tokens import SpeechTokenizer


def test_stage2_reproduces_its_training_responses(parrot):
    model = AutoModelForCausalLM.from_pretrained(parrot["model"]).eval()
    st = SpeechTokenizer(AutoTokenizer.from_pretrained(parrot["model"]))
    for row in parrot["rows"]:
        name, fields = parse(row["prompt"], row["response"], CROSS_MODAL)
        assert name == row["task"]
        got = evaluate.answer(model, st, name, fields, max_new_tokens=200)
        assert got == row["response"], (name, got, row["response"])
