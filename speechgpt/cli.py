"""``speechgpt <job> …``: one subcommand per job, each a thin wrapper over ``run(argv)``.

Jobs are imported lazily so that one job's heavy dependencies never slow another.
"""

from __future__ import annotations

import importlib
import sys

JOBS: dict[str, tuple[str, str]] = {
    "corpus": ("pipelines.samples", "write sample corpora in the four real on-disk formats"),
    "learn-kmeans": ("pipelines.learn_kmeans", "sample frame features and fit k-means centroids"),
    "tokenize": ("pipelines.tokenize", "a corpus -> deduplicated unit shards (Beam)"),
    "descriptions": (
        "speechinstruct.descriptions",
        "regenerate ASR/TTS task descriptions (OpenAI API)",
    ),
    "train-t2u": (
        "speechinstruct.t2u.train",
        "train the text-to-unit model on unit rows with text",
    ),
    "build": ("pipelines.build", "SpeechInstruct tables from unit shards and chats (Beam)"),
    "publish": ("pipelines.publish", "a build output -> a dataset folder with its card"),
    "import-speechinstruct": (
        "pipelines.import_speechinstruct",
        "the released SpeechInstruct jsonl files -> a dataset folder (rejects kept)",
    ),
    "init-model": ("training.init_model", "a tiny random Llama + BPE tokenizer for offline runs"),
    "prepare": ("training.prepare", "tokenize a stage's data into its token store, ahead of train"),
    "train": ("training.train", "one training stage (1, 2 or 3) on DeepSpeed"),
    "merge-lora": ("training.merge_lora", "fold a stage-3 LoRA adapter into its base model"),
    "eval": ("training.evaluate", "held-out loss, ASR WER and the ChatGPT Score of a model"),
    "train-vocoder": ("vocoder.train", "train a unit vocoder (HiFi-GAN or the fast baseline)"),
    "vocode": ("vocoder.vocode", "units -> a wav with a vocoder"),
    "eval-speech": (
        "training.eval_speech",
        "pocketsphinx WER: original, resynthesized, model speech",
    ),
    "talk": ("speechgpt.talk", "speak or type to a model; text and a wav back"),
    "web": ("speechgpt.web", "talk to a model in the browser (Gradio, on 127.0.0.1)"),
    "demo": ("speechgpt.demo", "run the whole chain on the embedded default"),
}


def usage() -> str:
    width = max(map(len, JOBS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in JOBS.items()]
    return "usage: speechgpt <job> [options]\n\njobs:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in JOBS:
        print(f"speechgpt: unknown job {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(JOBS[argv[0]][0])
    module.run(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
