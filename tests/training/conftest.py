"""The tiny model trained through stages 1-3, shared by the training tests."""

import pytest

from training import init_model, train


@pytest.fixture(scope="session")
def stages(published, tmp_path_factory) -> dict:
    """init-model, then stages 1 → 2 → 3 for a few steps each, on the published dataset."""
    work = tmp_path_factory.mktemp("train")
    base = init_model.run(["--data", published, "--output", str(work / "base")])
    out, summaries, prev = {"base": base}, {}, base
    for stage, steps in ((1, 12), (2, 12), (3, 12)):
        out[stage] = str(work / f"stage{stage}")
        summaries[stage] = train.run(
            [
                "--stage",
                str(stage),
                "--config",
                f"tiny/stage{stage}",
                "--data",
                published,
                "--base-model",
                prev,
                "--output",
                out[stage],
                "--steps",
                str(steps),
            ]
        )
        prev = out[stage]
    out["summaries"] = summaries
    return out
