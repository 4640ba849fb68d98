import pytest

from speechinstruct.templates import (
    CHAIN_OF_MODALITY,
    CROSS_MODAL,
    STANDARD,
    TEMPLATES,
    parse,
    parse_answer,
    render,
)

VALUES = {
    "description": "Can you write down what is said?",
    "text": "THE CAT SAT ON THE MAT",
    "speech": [5, 0, 999],
    "text_instruction": "Tell me a fact about rain; quickly.",
    "text_response": "Rain is water that falls from clouds.",
    "speech_instruction": [1, 2, 3],
    "speech_response": [7, 7, 8],
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_parse_round_trip(name):
    fields = {f: VALUES[f] for f in TEMPLATES[name].fields}
    prompt, response = render(name, **fields)
    assert prompt.startswith("[Human]: ") and prompt.endswith("<eoh> [SpeechGPT]: ")
    assert response.endswith("<eoa>")
    assert parse(prompt, response) == (name, fields)


def test_families_and_paper_wording():
    assert set(CROSS_MODAL + CHAIN_OF_MODALITY + STANDARD) == set(TEMPLATES)
    prompt, response = render("s2s", **{f: VALUES[f] for f in TEMPLATES["s2s"].fields})
    assert (
        "This is a speech instruction: <sosp><1><2><3><eosp>. And your response should be speech."
        in prompt
    )
    assert response == (
        "[tq] Tell me a fact about rain; quickly.; [ta] Rain is water that falls from clouds.; "
        "[ua] <sosp><7><7><8><eosp><eoa>"
    )
    prompt, response = render("asr", description="Transcribe it.", speech=[4], text="HI")
    assert (
        prompt + response
        == "[Human]: Transcribe it. This is input: <sosp><4><eosp><eoh> [SpeechGPT]: HI<eoa>"
    )


def test_parse_rejects_what_no_template_makes():
    prompt, response = render("t2t", text_instruction="hi", text_response="hello")
    with pytest.raises(ValueError):
        parse(prompt, response.replace("<eoa>", ""))
    with pytest.raises(ValueError):
        parse("[Human]: hello <eoh> [SpeechGPT]: ", "hi<eoa>")
    with pytest.raises(KeyError, match="needs"):
        render("s2t", text_instruction="x")


def test_parse_answer_of_generated_text():
    assert parse_answer("[tq] what is rain; [ta] water; [ua] <sosp><3><4><eosp><eoa>") == {
        "tq": "what is rain",
        "ta": "water",
        "ua": [3, 4],
    }
    assert parse_answer("[ta] only text<eoa>") == {"ta": "only text"}
    assert parse_answer("[ta] cut; [ua] <sosp><3><4>") == {"ta": "cut", "ua": [3, 4]}
    assert parse_answer("nothing") == {}
