"""Unit HiFi-GAN: fairseq checkpoints load, outputs match fairseq's code, training resumes exactly.

fairseq is not installed: ``FairseqCodeGenerator`` below transcribes its ``CodeGenerator``
(fairseq/models/text_to_speech/{hifigan,codehifigan,fastspeech2}.py) with the old
``torch.nn.utils.weight_norm``, so its ``state_dict`` has the keys a released ``g_*`` has.
"""

import json
import os
import shutil
import warnings
from argparse import Namespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import Conv1d, ConvTranspose1d

from vocoder import HOP, load_vocoder
from vocoder.hifigan import (
    CodeGenerator,
    HifiGanVocoder,
    UnsafeCheckpointError,
    add_weight_norm,
    fairseq_state_dict,
    load_generator_state,
)
from vocoder.train import run as train_vocoder

# the released mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj config.json, less training keys
RELEASED = {
    "resblock": "1",
    "upsample_rates": [5, 4, 4, 2, 2],
    "upsample_kernel_sizes": [11, 8, 8, 4, 4],
    "upsample_initial_channel": 512,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "num_embeddings": 1000,
    "embedding_dim": 128,
    "model_in_dim": 128,
    "segment_size": 8960,
    "code_hop_size": 320,
    "f0": False,
    "num_mels": 80,
    "num_freq": 1025,
    "n_fft": 1024,
    "hop_size": 256,
    "win_size": 1024,
    "dur_prediction_weight": 1.0,
    "dur_predictor_params": {
        "encoder_embed_dim": 128,
        "var_pred_hidden_dim": 128,
        "var_pred_kernel_size": 3,
        "var_pred_dropout": 0.5,
    },
    "sampling_rate": 16000,
    "fmin": 0,
    "fmax": 8000,
    "fmax_for_loss": None,
}


# --- fairseq's CodeGenerator, transcribed ---------------------------------------------------


def weight_norm(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in favour of parametrizations
        return torch.nn.utils.weight_norm(module)


LRELU_SLOPE = 0.1


def get_padding(kernel_size, dilation=1):
    return (kernel_size * dilation - dilation) // 2


class ResBlock(torch.nn.Module):
    def __init__(self, channels, kernel_size=3, dilation=(1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(
                Conv1d(
                    channels,
                    channels,
                    kernel_size,
                    1,
                    dilation=d,
                    padding=get_padding(kernel_size, d),
                )
            )
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            weight_norm(
                Conv1d(
                    channels,
                    channels,
                    kernel_size,
                    1,
                    dilation=1,
                    padding=get_padding(kernel_size, 1),
                )
            )
            for _ in dilation
        )

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            xt = c1(xt)
            xt = F.leaky_relu(xt, LRELU_SLOPE)
            xt = c2(xt)
            x = xt + x
        return x


class Generator(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.num_kernels = len(cfg["resblock_kernel_sizes"])
        self.num_upsamples = len(cfg["upsample_rates"])
        self.conv_pre = weight_norm(
            Conv1d(cfg.get("model_in_dim", 80), cfg["upsample_initial_channel"], 7, 1, padding=3)
        )
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(
            zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"], strict=True)
        ):
            self.ups.append(
                weight_norm(
                    ConvTranspose1d(
                        cfg["upsample_initial_channel"] // (2**i),
                        cfg["upsample_initial_channel"] // (2 ** (i + 1)),
                        k,
                        u,
                        padding=(k - u) // 2,
                    )
                )
            )
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = cfg["upsample_initial_channel"] // (2 ** (i + 1))
            for k, d in zip(
                cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"], strict=True
            ):
                self.resblocks.append(ResBlock(ch, k, d))
        self.conv_post = weight_norm(Conv1d(ch, 1, 7, 1, padding=3))

    def forward(self, x):
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            x = F.leaky_relu(x, LRELU_SLOPE)
            x = self.ups[i](x)
            xs = None
            for j in range(self.num_kernels):
                if xs is None:
                    xs = self.resblocks[i * self.num_kernels + j](x)
                else:
                    xs += self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = F.leaky_relu(x)
        x = self.conv_post(x)
        x = torch.tanh(x)
        return x


class VariancePredictor(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv1d(
                args.encoder_embed_dim,
                args.var_pred_hidden_dim,
                kernel_size=args.var_pred_kernel_size,
                padding=(args.var_pred_kernel_size - 1) // 2,
            ),
            nn.ReLU(),
        )
        self.ln1 = nn.LayerNorm(args.var_pred_hidden_dim)
        self.dropout_module = nn.Dropout(p=args.var_pred_dropout)
        self.conv2 = nn.Sequential(
            nn.Conv1d(
                args.var_pred_hidden_dim,
                args.var_pred_hidden_dim,
                kernel_size=args.var_pred_kernel_size,
                padding=1,
            ),
            nn.ReLU(),
        )
        self.ln2 = nn.LayerNorm(args.var_pred_hidden_dim)
        self.proj = nn.Linear(args.var_pred_hidden_dim, 1)

    def forward(self, x):
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)
        x = self.dropout_module(self.ln1(x))
        x = self.conv2(x.transpose(1, 2)).transpose(1, 2)
        x = self.dropout_module(self.ln2(x))
        return self.proj(x).squeeze(dim=2)


class FairseqCodeGenerator(Generator):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.dict = nn.Embedding(cfg["num_embeddings"], cfg["embedding_dim"])
        self.multispkr = cfg.get("multispkr", None)
        if self.multispkr:
            self.spkr = nn.Embedding(cfg.get("num_speakers", 200), cfg["embedding_dim"])
        self.dur_predictor = None
        if cfg.get("dur_predictor_params", None):
            self.dur_predictor = VariancePredictor(Namespace(**cfg["dur_predictor_params"]))

    @staticmethod
    def _upsample(signal, max_frames):
        bsz, channels, cond_length = signal.size()
        signal = signal.unsqueeze(3).repeat(1, 1, 1, max_frames // cond_length)
        return signal.view(bsz, channels, max_frames)

    def forward(self, **kwargs):
        x = self.dict(kwargs["code"]).transpose(1, 2)
        if self.dur_predictor and kwargs.get("dur_prediction", False):
            assert x.size(0) == 1, "only support single sample"
            log_dur_pred = self.dur_predictor(x.transpose(1, 2))
            dur_out = torch.clamp(torch.round(torch.exp(log_dur_pred) - 1).long(), min=1)
            x = torch.repeat_interleave(x, dur_out.view(-1), dim=2)
        if self.multispkr:
            spkr = self.spkr(kwargs["spkr"]).transpose(1, 2)
            spkr = self._upsample(spkr, x.shape[-1])
            x = torch.cat([x, spkr], dim=1)
        return super().forward(x)


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a busy shared CPU two threads spin-wait and run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference(cfg: dict, seed: int = 0) -> FairseqCodeGenerator:
    """fairseq's generator with random weights; ``g`` off ‖v‖ so folding weight norm matters."""
    torch.manual_seed(seed)
    ref = FairseqCodeGenerator(cfg).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))
        if ref.dur_predictor is not None:
            ref.dur_predictor.proj.bias.fill_(1.2)  # durations of ~2-3 frames, not all 1
    return ref


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A folder laid out like the released vocoder: config.json + g_00500000 (random weights)."""
    folder = tmp_path_factory.mktemp("mhubert_km1000_lj")
    ref = reference(RELEASED)
    torch.save({"generator": ref.state_dict()}, folder / "g_00500000")
    (folder / "config.json").write_text(json.dumps(RELEASED))
    return folder, ref


def test_released_layout_loads_and_synthesizes_whole_frames(released):
    folder, ref = released
    assert {k.rsplit(".", 1)[-1] for k in ref.state_dict()} >= {"weight_g", "weight_v"}
    vocoder = load_vocoder(folder)  # no missing/unexpected keys, or it raises
    assert isinstance(vocoder, HifiGanVocoder) and vocoder.sample_rate == 16000
    assert HifiGanVocoder.load(folder / "g_00500000").generator.dict.num_embeddings == 1000
    units, durations = [5, 999, 0, 17], [3, 1, 4, 2]
    wave = vocoder.synthesize(units, durations)
    assert wave.dtype == np.float32 and wave.shape == (10 * HOP,)
    predicted = vocoder.synthesize(units)
    frames = ref.dur_predictor(ref.dict(torch.tensor([units])))
    n = int(torch.clamp(torch.round(torch.exp(frames) - 1).long(), min=1).sum())
    assert predicted.shape == (n * HOP,) and n > len(units)
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        vocoder.synthesize([1000])


def test_speechgpt_release_folder_with_vocoder_pt_loads_like_g(released, tmp_path):
    """The SpeechGPT release ships the vocoder as config.json + vocoder.pt."""
    folder, _ = released
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    shutil.copy(folder / "g_00500000", tmp_path / "vocoder.pt")
    units, durations = [5, 999, 0, 17], [3, 1, 4, 2]
    got = load_vocoder(tmp_path).synthesize(units, durations)
    np.testing.assert_array_equal(got, load_vocoder(folder).synthesize(units, durations))
    (tmp_path / "vocoder.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"vocoder\.pt"):
        load_vocoder(tmp_path)


def test_outputs_match_fairseq_generator(released):
    folder, ref = released
    vocoder = load_vocoder(folder)
    rng = np.random.default_rng(0)
    units, durations = rng.integers(0, 1000, 12), rng.integers(1, 4, 12)
    frames = torch.tensor(np.repeat(units, durations))[None]
    with torch.no_grad():
        want_frames = ref(code=frames).view(-1).numpy()
        want_predicted = ref(code=torch.tensor(units)[None], dur_prediction=True).view(-1).numpy()
    got = vocoder.synthesize(units, durations)
    assert np.abs(got - want_frames).max() < 1e-5
    assert np.abs(vocoder.synthesize(units) - want_predicted).max() < 1e-5
    assert np.abs(want_frames).max() > 1e-3  # not a silent (degenerate) comparison


def test_speaker_embedding_and_every_weight_norm_spelling(tmp_path):
    cfg = {
        **RELEASED,
        "upsample_initial_channel": 32,
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "num_embeddings": 16,
        "model_in_dim": 256,
        "multispkr": True,
        "num_speakers": 4,
    }
    ref = reference(cfg, seed=1)
    code = torch.randint(0, 16, (1, 9))
    with torch.no_grad():
        want = ref(code=code, spkr=torch.tensor([[2]])).view(-1).numpy()
    folded = CodeGenerator(cfg)
    load_generator_state(folded, ref.state_dict())  # weight_g / weight_v
    trainable = add_weight_norm(CodeGenerator(cfg))
    load_generator_state(trainable, ref.state_dict())  # → parametrizations.weight.original0/1
    assert any("parametrizations" in k for k in trainable.state_dict())
    assert fairseq_state_dict(trainable).keys() == ref.state_dict().keys()
    again = CodeGenerator(cfg)
    load_generator_state(again, trainable.state_dict())  # parametrized names → plain
    normed = add_weight_norm(CodeGenerator(cfg))
    load_generator_state(normed, folded.state_dict())  # plain → g = ‖w‖, v = w
    for model in (folded, trainable.eval(), again, normed.eval()):
        got = HifiGanVocoder(model, cfg).synthesize(code[0].numpy(), np.ones(9), speaker=2)
        assert np.abs(got - want).max() < 1e-5
    with pytest.raises(ValueError, match=r"speaker must lie in \[0, 4\)"):
        HifiGanVocoder(folded, cfg).synthesize([1], speaker=4)

    state = ref.state_dict()
    del state["spkr.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing \['spkr.weight'\], unexpected \['extra"):
        load_generator_state(CodeGenerator(cfg), state)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_pickled_global_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    cfg = {**RELEASED, "upsample_initial_channel": 64, "num_embeddings": 4}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    state = fairseq_state_dict(CodeGenerator(cfg))
    torch.save({"generator": state, "note": Exploit(marker)}, tmp_path / "g_00000001")
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*os\.makedirs"):
        load_vocoder(tmp_path)
    assert not marker.exists()


def _rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_tiny_training_resumes_exactly(made, tmp_path):
    base = ["--units", *made["units"], "--preset", "tiny", "--log-every", "2"]
    straight = tmp_path / "straight"
    train_vocoder([*base, "--output", str(straight), "--steps", "6"])
    resumed = tmp_path / "resumed"
    train_vocoder([*base, "--output", str(resumed), "--steps", "4"])
    assert sorted(p.name for p in resumed.glob("[dg]*_*")) == ["do_00000004", "g_00000004"]
    train_vocoder([*base, "--output", str(resumed), "--steps", "6", "--resume"])

    want, got = _rows(straight), _rows(resumed)
    assert [r["step"] for r in got] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(want, got, strict=True):
        for key in (
            "loss",
            "mel_l1",
            "adversarial",
            "feature_matching",
            "duration",
            "discriminator",
            "lr",
        ):
            assert abs(a[key] - b[key]) <= 1e-6, (key, a, b)
    g1 = torch.load(straight / "g_00000006", weights_only=True)["generator"]
    g2 = torch.load(resumed / "g_00000006", weights_only=True)["generator"]
    assert g1.keys() == g2.keys() and all(torch.equal(g1[k], g2[k]) for k in g1)
    assert any(k.endswith("weight_g") for k in g1)  # fairseq's spelling

    config = json.loads((resumed / "config.json").read_text())
    assert config["num_embeddings"] == 16 and config["upsample_rates"] == [5, 4, 4, 2, 2]
    assert (resumed / "loss.png").stat().st_size > 1000
    vocoder = load_vocoder(resumed)
    wave = vocoder.synthesize([3, 1, 15], [2, 5, 1])
    assert wave.shape == (8 * HOP,) and np.isfinite(wave).all()
    with pytest.raises(FileExistsError, match="--resume"):
        train_vocoder([*base, "--output", str(resumed), "--steps", "8"])
