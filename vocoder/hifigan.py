"""Unit HiFi-GAN: fairseq's ``CodeGenerator``, HiFi-GAN's discriminators and losses, loading.

The generator's ``state_dict`` is fairseq's (``dict``, ``conv_pre``, ``ups``, ``resblocks``,
``conv_post``, ``dur_predictor``, ``spkr``), so the released code HiFi-GAN folders (a fairseq
vocoder ``config.json`` plus ``g_00500000``) load as they are. Layers, paddings and the
duration rule follow fairseq's ``text_to_speech/{hifigan,codehifigan,fastspeech2}.py``; the
discriminators and losses follow facebookresearch/speech-resynthesis (after jik876/hifi-gan).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from vocoder import SAMPLE_RATE, read_config

LRELU_SLOPE = 0.1
_NORMED = ".parametrizations.weight.original"  # torch's weight-norm parameter names: 0 = g, 1 = v


class UnsafeCheckpointError(ValueError):
    """A checkpoint names a pickled global that is not plain data, so it is refused unread."""


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: three dilated convolutions, each followed by an undilated one."""

    def __init__(self, channels: int, kernel_size: int, dilation: Sequence[int]):
        super().__init__()

        def conv(d: int) -> nn.Conv1d:
            return nn.Conv1d(channels, channels, kernel_size, 1, get_padding(kernel_size, d), d)

        self.convs1 = nn.ModuleList(conv(d) for d in dilation)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class VariancePredictor(nn.Module):
    """fairseq's FastSpeech 2 variance predictor, used as the unit duration predictor."""

    def __init__(
        self,
        encoder_embed_dim: int,
        var_pred_hidden_dim: int,
        var_pred_kernel_size: int,
        var_pred_dropout: float,
    ):
        super().__init__()
        hidden, k = var_pred_hidden_dim, var_pred_kernel_size
        self.conv1 = nn.Sequential(
            nn.Conv1d(encoder_embed_dim, hidden, k, padding=(k - 1) // 2), nn.ReLU()
        )
        self.ln1 = nn.LayerNorm(hidden)
        self.conv2 = nn.Sequential(nn.Conv1d(hidden, hidden, k, padding=1), nn.ReLU())
        self.ln2 = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(var_pred_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log (duration + 1) per unit: ``(B, T, C)`` → ``(B, T)``."""
        x = self.dropout(self.ln1(self.conv1(x.transpose(1, 2)).transpose(1, 2)))
        x = self.dropout(self.ln2(self.conv2(x.transpose(1, 2)).transpose(1, 2)))
        return self.proj(x).squeeze(2)


class CodeGenerator(nn.Module):
    """Unit embedding (+ speaker embedding) → HiFi-GAN upsampler → waveform in [-1, 1].

    ``cfg`` is a fairseq vocoder config (``upsample_rates``, ``resblock_kernel_sizes``, …).
    """

    def __init__(self, cfg: dict):
        super().__init__()
        for key in ("f0", "embedder_params"):
            if cfg.get(key):
                raise NotImplementedError(
                    f"vocoder config sets {key!r}: only unit (and speaker id) inputs are supported"
                )
        ch = cfg["upsample_initial_channel"]
        self.num_kernels = len(cfg["resblock_kernel_sizes"])
        self.dict = nn.Embedding(cfg["num_embeddings"], cfg["embedding_dim"])
        self.multispkr = bool(cfg.get("multispkr"))
        if self.multispkr:
            self.spkr = nn.Embedding(cfg.get("num_speakers", 200), cfg["embedding_dim"])
        self.dur_predictor = None
        if cfg.get("dur_predictor_params"):
            self.dur_predictor = VariancePredictor(**cfg["dur_predictor_params"])
        self.conv_pre = nn.Conv1d(cfg.get("model_in_dim", 80), ch, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ups = zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"], strict=True)
        kernels, dilations = cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"]
        for i, (u, k) in enumerate(ups):
            cin, cout = ch // 2**i, ch // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(cin, cout, k, u, padding=(k - u) // 2))
            self.resblocks.extend(
                ResBlock(cout, kr, d) for kr, d in zip(kernels, dilations, strict=True)
            )
        self.conv_post = nn.Conv1d(cout, 1, 7, 1, padding=3)

    def upsampler_convs(self) -> list[nn.Module]:
        """The convolutions fairseq wraps in weight norm (not the duration predictor's)."""
        blocks = [c for block in self.resblocks for c in (*block.convs1, *block.convs2)]
        return [self.conv_pre, *self.ups, *blocks, self.conv_post]

    def predict_durations(self, code: torch.Tensor) -> torch.Tensor:
        """Frames per unit, fairseq's rule: ``clamp(round(exp(log_dur) - 1), min=1)``."""
        log_dur = self.dur_predictor(self.dict(code))
        return torch.clamp(torch.round(torch.exp(log_dur) - 1).long(), min=1)

    def forward(
        self, code: torch.Tensor, spkr: torch.Tensor | None = None, dur_prediction: bool = False
    ) -> torch.Tensor:
        """``code`` (B, T) unit ids → ``(B, 1, frames × prod(upsample_rates))`` samples.

        With ``dur_prediction`` (batch of one), ``code`` holds reduced units and each is
        repeated by its predicted duration; otherwise ``code`` holds one unit per frame.
        """
        x = self.dict(code).transpose(1, 2)
        if self.dur_predictor is not None and dur_prediction:
            if x.size(0) != 1:
                raise ValueError("duration prediction takes a batch of one sequence")
            x = torch.repeat_interleave(x, self.predict_durations(code).view(-1), dim=2)
        if self.multispkr:
            if spkr is None:
                raise ValueError("this vocoder has a speaker embedding: pass a speaker id")
            speaker = self.spkr(spkr.view(-1, 1)).transpose(1, 2)
            x = torch.cat([x, speaker.expand(-1, -1, x.size(2))], dim=1)
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        # the last activation uses torch's default slope (0.01), as in HiFi-GAN
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def add_weight_norm(generator: CodeGenerator) -> CodeGenerator:
    """Weight-normalize the upsampler for training, as fairseq/HiFi-GAN train it."""
    for conv in generator.upsampler_convs():
        parametrizations.weight_norm(conv)
    return generator


# --- checkpoints ------------------------------------------------------------------------------


def load_checkpoint(path: str | Path) -> dict:
    """A ``torch.save``'d dict of tensors and plain values; nothing in the pickle is run.

    Raises:
        UnsafeCheckpointError: the file names a global outside torch's ``weights_only`` set.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.findall(r"GLOBAL ([\w.]+)", str(e))
        what = f"it references {', '.join(found)}" if found else str(e).split("\n")[0]
        raise UnsafeCheckpointError(
            f"refused to load {path}: {what}, which is not plain data (a pickle naming it "
            "could run code); only tensors and plain values load"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint dict: it holds a {type(state).__name__}")
    return state


def _fairseq_name(key: str) -> str:
    return key.replace(_NORMED + "0", ".weight_g").replace(_NORMED + "1", ".weight_v")


def fairseq_state_dict(generator: CodeGenerator) -> dict[str, torch.Tensor]:
    """The generator's weights under fairseq's names (``weight_g``/``weight_v`` if normed)."""
    return {_fairseq_name(k): v.detach().clone() for k, v in generator.state_dict().items()}


def _norm_except_0(v: torch.Tensor) -> torch.Tensor:
    """Norm over all dims but 0, shaped to broadcast (``torch.nn.utils.weight_norm``'s ``g``)."""
    return v.flatten(1).norm(dim=1).view(-1, *[1] * (v.dim() - 1))


def _fold(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The weight that weight norm's ``g`` and ``v`` stand for: ``g · v / ‖v‖``."""
    return v * (g / _norm_except_0(v))


def load_generator_state(generator: CodeGenerator, state: dict[str, torch.Tensor]) -> None:
    """Load fairseq or torch generator weights: plain, ``weight_g/_v`` or parametrized names.

    Weight norm is folded (or split) to whatever ``generator`` holds.

    Raises:
        ValueError: keys are missing or unexpected, or a shape differs.
    """
    given = {_fairseq_name(k): v for k, v in state.items()}
    wanted = {_fairseq_name(k): k for k in generator.state_dict()}
    out, used = {}, set()
    for name, key in wanted.items():
        base = name.rsplit(".", 1)[0]
        g, v, plain = f"{base}.weight_g", f"{base}.weight_v", f"{base}.weight"
        if name in given:
            out[key] = given[name]
            used.add(name)
        elif name == plain and g in given and v in given:
            out[key] = _fold(given[g], given[v])
            used |= {g, v}
        elif name in (g, v) and plain in given:  # a folded checkpoint into a normed generator
            weight = given[plain]
            out[key] = _norm_except_0(weight) if name == g else weight
            used.add(plain)
    missing = sorted(set(wanted) - {_fairseq_name(k) for k in out})
    unexpected = sorted(set(given) - used)
    if missing or unexpected:
        raise ValueError(
            f"generator weights do not match the config: missing {missing[:8]}"
            f"{' …' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{' …' if len(unexpected) > 8 else ''}"
        )
    try:
        generator.load_state_dict(out, strict=True)
    except RuntimeError as e:
        raise ValueError(f"generator weights do not match the config: {e}") from None


RELEASED_NAME = "vocoder.pt"  # the released SpeechGPT vocoder folder: config.json + vocoder.pt


def newest_generator(folder: Path) -> Path:
    """The ``g_XXXXXXXX`` checkpoint with the highest step in ``folder``, else the released
    folder's ``vocoder.pt`` (the same ``{"generator": …}`` dict)."""
    found = [p for p in folder.glob("g_*") if re.fullmatch(r"g_\d+", p.name)]
    if found:
        return max(found, key=lambda p: int(p.name[2:]))
    if (folder / RELEASED_NAME).is_file():
        return folder / RELEASED_NAME
    raise FileNotFoundError(f"no g_* generator checkpoint or {RELEASED_NAME} in {folder}")


class HifiGanVocoder:
    """A unit HiFi-GAN ready to synthesize (weight norm folded, eval mode)."""

    def __init__(self, generator: CodeGenerator, config: dict, device: str = "cpu"):
        self.generator = generator.to(device).eval()
        self.config = config
        self.device = device
        self.sample_rate = int(config.get("sampling_rate", SAMPLE_RATE))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> HifiGanVocoder:
        """From a folder (config.json + newest ``g_*``) or a checkpoint file beside config.json."""
        folder, config = read_config(path)
        path = Path(path)
        checkpoint = path if path.is_file() else newest_generator(folder)
        state = load_checkpoint(checkpoint)
        if "generator" not in state:
            raise ValueError(f"{checkpoint} has no 'generator' weights (keys: {sorted(state)})")
        generator = CodeGenerator(config)
        try:
            load_generator_state(generator, state["generator"])
        except ValueError as e:
            raise ValueError(f"{checkpoint} with {folder / 'config.json'}: {e}") from None
        return cls(generator, config, device)

    def synthesize(
        self,
        units: Sequence[int],
        durations: Sequence[int] | None = None,
        speaker: int | None = None,
    ) -> np.ndarray:
        """Mono float32 samples, ``prod(upsample_rates)`` per frame (see ``vocoder.Vocoder``)."""
        code = torch.as_tensor(np.asarray(units, dtype=np.int64)).view(-1)
        k = self.generator.dict.num_embeddings
        low, high = (int(code.min()), int(code.max())) if len(code) else (0, 0)
        if low < 0 or high >= k:
            raise ValueError(f"units must lie in [0, {k}): got {low}..{high}")
        if durations is not None:
            code = torch.repeat_interleave(code, torch.as_tensor(np.asarray(durations, np.int64)))
        if len(code) == 0:
            return np.zeros(0, dtype=np.float32)
        spkr = None
        if self.generator.multispkr:  # speaker ids index config["speakers"]; 0 by default
            n = self.generator.spkr.num_embeddings
            if not 0 <= (speaker or 0) < n:
                raise ValueError(f"speaker must lie in [0, {n}): got {speaker}")
            spkr = torch.tensor([speaker or 0], device=self.device)
        predict = durations is None and self.generator.dur_predictor is not None
        with torch.inference_mode():
            wave = self.generator(code[None].to(self.device), spkr, dur_prediction=predict)
        return wave.view(-1).float().cpu().numpy()


# --- discriminators and losses (speech-resynthesis / HiFi-GAN) ----------------------------------


def _norm(conv: nn.Module, spectral: bool) -> nn.Module:
    return parametrizations.spectral_norm(conv) if spectral else parametrizations.weight_norm(conv)


def _score(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor):
    """A discriminator's conv stack: its flattened score and every layer's feature map."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """Looks at every ``period``-th sample: 2-D convolutions over (time / period, period)."""

    def __init__(self, period: int, width: int = 1, kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        chans = [1] + [c // width for c in (32, 128, 512, 1024, 1024)]
        strides = (stride, stride, stride, stride, 1)
        self.convs = nn.ModuleList(
            _norm(nn.Conv2d(cin, cout, (kernel_size, 1), (s, 1), (get_padding(5), 0)), False)
            for cin, cout, s in zip(chans[:-1], chans[1:], strides, strict=True)
        )
        self.conv_post = _norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, (1, 0)), False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        return _score(self.convs, self.conv_post, x)


class DiscriminatorS(nn.Module):
    """Grouped 1-D convolutions over the waveform at one scale."""

    # (out channels, kernel, stride, groups)
    LAYERS = (
        (128, 15, 1, 1),
        (128, 41, 2, 4),
        (256, 41, 2, 16),
        (512, 41, 4, 16),
        (1024, 41, 4, 16),
        (1024, 41, 1, 16),
        (1024, 5, 1, 1),
    )

    def __init__(self, spectral: bool = False, width: int = 1):
        super().__init__()
        self.convs, cin = nn.ModuleList(), 1
        for cout, k, s, g in self.LAYERS:
            conv = nn.Conv1d(cin, cout // width, k, s, padding=(k - 1) // 2, groups=g)
            self.convs.append(_norm(conv, spectral))
            cin = cout // width
        self.conv_post = _norm(nn.Conv1d(cin, 1, 3, 1, padding=1), spectral)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _score(self.convs, self.conv_post, x)


class MultiDiscriminator(nn.Module):
    """Runs each sub-discriminator on real and generated audio: scores and feature maps."""

    def inputs(self, i: int, y: torch.Tensor) -> torch.Tensor:
        return y

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[list, list, list, list]:
        real, fake, fmap_real, fmap_fake = [], [], [], []
        for i, d in enumerate(self.discriminators):
            y, y_hat = self.inputs(i, y), self.inputs(i, y_hat)
            (r, fr), (g, fg) = d(y), d(y_hat)
            real.append(r)
            fake.append(g)
            fmap_real.append(fr)
            fmap_fake.append(fg)
        return real, fake, fmap_real, fmap_fake


class MultiPeriodDiscriminator(MultiDiscriminator):
    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), width: int = 1):
        super().__init__()
        self.discriminators = nn.ModuleList(DiscriminatorP(p, width) for p in periods)


class MultiScaleDiscriminator(MultiDiscriminator):
    """Raw, ×2 and ×4 average-pooled audio; the first uses spectral norm."""

    def __init__(self, width: int = 1):
        super().__init__()
        self.discriminators = nn.ModuleList(
            DiscriminatorS(spectral=i == 0, width=width) for i in range(3)
        )
        self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(2))

    def inputs(self, i: int, y: torch.Tensor) -> torch.Tensor:
        return self.meanpools[i - 1](y) if i else y


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real scores toward 1, generated toward 0."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(g**2) for r, g in zip(real, fake, strict=True))


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: generated scores toward 1."""
    return sum(torch.mean((1 - g) ** 2) for g in fake)


def feature_loss(fmap_real: list[list], fmap_fake: list[list]) -> torch.Tensor:
    """L1 between discriminator feature maps of real and generated audio, × 2."""
    loss = 0
    for dr, dg in zip(fmap_real, fmap_fake, strict=True):
        loss = loss + sum(torch.mean(torch.abs(r - g)) for r, g in zip(dr, dg, strict=True))
    return 2 * loss


def duration_loss(generator: CodeGenerator, code: torch.Tensor) -> torch.Tensor:
    """MSE of predicted log durations against ``log(run length + 1)`` of ``code``'s unit runs.

    As speech-resynthesis: a segment's first and last runs are cut by the segment edges, so
    they are left out when there are more than two.
    """
    feats, targets = [], []
    emb = generator.dict(code)
    for row, e in zip(code, emb, strict=True):
        _, counts = torch.unique_consecutive(row, return_counts=True)
        if len(counts) > 2:
            counts, index = counts[1:-1], counts.cumsum(0)[:-2]
        else:
            index = counts.cumsum(0) - 1
        feats.append(e[index])
        targets.append(counts)
    padded = nn.utils.rnn.pad_sequence(feats, batch_first=True)
    mask = nn.utils.rnn.pad_sequence([torch.ones(len(f), dtype=torch.bool) for f in feats], True)
    log_dur = generator.dur_predictor(padded)[mask.to(padded.device)]
    return F.mse_loss(log_dur, torch.log(torch.cat(targets).float() + 1))


class MelSpectrogram(nn.Module):
    """HiFi-GAN's loss mel: reflect-padded STFT magnitude, librosa (Slaney) mel, log ≥ 1e-5."""

    def __init__(
        self,
        sampling_rate: int = SAMPLE_RATE,
        n_fft: int = 1024,
        num_mels: int = 80,
        hop_size: int = 256,
        win_size: int = 1024,
        fmin: float = 0,
        fmax: float | None = 8000,
    ):
        super().__init__()
        import librosa

        basis = librosa.filters.mel(
            sr=sampling_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax
        )
        self.register_buffer("basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(win_size), persistent=False)
        self.n_fft, self.hop, self.win = n_fft, hop_size, win_size

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, samples)`` → ``(B, num_mels, frames)``."""
        pad = (self.n_fft - self.hop) // 2
        y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            y, self.n_fft, self.hop, self.win, self.window, center=False, return_complex=True
        )
        magnitude = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
        return torch.log(torch.clamp(self.basis @ magnitude, min=1e-5))
