"""HuBERT / mHuBERT layer-L features at 50 Hz with transformers' ``HubertModel``.

The model comes from an HF folder or from a fairseq ``.pt`` converted in-process, without
fairseq: the checkpoint is read by ``speechinstruct.checkpoints`` and its keys are renamed as
transformers' own ``convert_hubert_original_pytorch_checkpoint_to_pytorch.py`` does.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize
from transformers import HubertConfig, HubertModel

from speechinstruct.checkpoints import load_fairseq_checkpoint

MAX_CHUNK = 1_600_000  # fairseq's dump_hubert_feature.py: 100 s at 16 kHz per forward pass
DEFAULT_CONV_LAYERS = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_accurate": "gelu_new",
    "gelu_fast": "gelu_new",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}

# fairseq HubertModel name → HubertModel name (regex, replacement), first match wins
KEY_RULES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    # ".2." is the GroupNorm ("default" mode); ".2.1." the LayerNorm inside TransposeLast
    (
        r"feature_extractor\.conv_layers\.(\d+)\.2\.(1\.)?",
        r"feature_extractor.conv_layers.\1.layer_norm.",
    ),
    (r"post_extract_proj\.", "feature_projection.projection."),
    (r"layer_norm\.", "feature_projection.layer_norm."),
    (r"encoder\.pos_conv\.0\.(?:parametrizations\.weight\.original0|weight_g)$", "POS_G"),
    (r"encoder\.pos_conv\.0\.(?:parametrizations\.weight\.original1|weight_v)$", "POS_V"),
    (r"encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
    (r"encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    (r"encoder\.layer_norm\.", "encoder.layer_norm."),
    (r"mask_emb$", "masked_spec_embed"),
]
DROPPED = re.compile(r"label_embs_concat$|final_proj\.")  # pre-training heads, unused here


def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` string → [(dim, kernel, stride)], without ``eval``."""

    def value(node: ast.AST) -> object:
        match node:
            case ast.Constant(value=int() as v) if not isinstance(v, bool):
                return v
            case ast.List(elts=elts):
                return [value(e) for e in elts]
            case ast.Tuple(elts=elts):
                return tuple(value(e) for e in elts)
            case ast.BinOp(left=left, op=ast.Add(), right=right):
                return value(left) + value(right)
            case ast.BinOp(left=left, op=ast.Mult(), right=right):
                a, b = value(left), value(right)
                if not (isinstance(a, list) and isinstance(b, int) and 0 <= b <= 100):
                    raise ValueError(f"unsupported conv_feature_layers {spec!r}")
                return a * b
        raise ValueError(f"unsupported conv_feature_layers {spec!r}")

    layers = value(ast.parse(spec, mode="eval").body)
    if not (
        isinstance(layers, list)
        and layers
        and all(
            isinstance(t, tuple) and len(t) == 3 and all(isinstance(v, int) for v in t)
            for t in layers
        )
    ):
        raise ValueError(f"conv_feature_layers {spec!r} is not a list of (dim, kernel, stride)")
    return layers


def fairseq_configs(ckpt: dict) -> tuple[dict, dict]:
    """The ``(model, task)`` config sections of a loaded fairseq checkpoint."""
    cfg = ckpt.get("cfg")
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"], cfg.get("task") or {}
    args = ckpt.get("args")
    if isinstance(args, dict):  # older checkpoints: one flat argparse.Namespace
        return args, args
    raise ValueError("fairseq checkpoint has neither cfg['model'] nor args")


def hubert_config(model_cfg: dict) -> HubertConfig:
    """A HubertConfig for inference from a fairseq ``hubert`` model config (dropouts off)."""
    m = model_cfg
    if m.get("_name", "hubert") != "hubert" or m.get("layer_type", "transformer") != "transformer":
        raise ValueError(
            f"not a HuBERT pre-training checkpoint: model {m.get('_name')!r}, "
            f"layer_type {m.get('layer_type')!r}"
        )
    mode = m.get("extractor_mode", "default")
    activation = m.get("activation_fn", "gelu")
    if mode not in ("default", "layer_norm") or activation not in ACTIVATIONS:
        raise ValueError(f"unsupported extractor_mode {mode!r} or activation_fn {activation!r}")
    conv = parse_conv_layers(m.get("conv_feature_layers") or DEFAULT_CONV_LAYERS)
    return HubertConfig(
        hidden_size=m.get("encoder_embed_dim", 768),
        num_hidden_layers=m.get("encoder_layers", 12),
        num_attention_heads=m.get("encoder_attention_heads", 12),
        intermediate_size=m.get("encoder_ffn_embed_dim", 3072),
        hidden_act=ACTIVATIONS[activation],
        feat_extract_norm="group" if mode == "default" else "layer",
        feat_extract_activation="gelu",
        conv_dim=[d for d, _, _ in conv],
        conv_kernel=[k for _, k, _ in conv],
        conv_stride=[s for _, _, s in conv],
        conv_bias=bool(m.get("conv_bias", False)),
        num_conv_pos_embeddings=m.get("conv_pos", 128),
        num_conv_pos_embedding_groups=m.get("conv_pos_groups", 16),
        do_stable_layer_norm=bool(m.get("layer_norm_first", False)),
        feat_proj_layer_norm=True,  # fairseq HuBERT always layer-norms the conv features
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        layerdrop=0.0,
    )


def convert_state_dict(fairseq_state: dict, model: HubertModel) -> tuple[dict, list[str]]:
    """fairseq HuBERT weights renamed for ``model``: ``(state, fairseq keys with no rule)``."""
    hf_keys = set(model.state_dict())
    conv = "encoder.pos_conv_embed.conv."
    # weight norm's g/v are named by the torch weight-norm API the installed version uses
    if conv + "parametrizations.weight.original0" in hf_keys:
        g, v = (
            conv + "parametrizations.weight.original0",
            conv + "parametrizations.weight.original1",
        )
    else:
        g, v = conv + "weight_g", conv + "weight_v"
    state, unmapped = {}, []
    for key, tensor in fairseq_state.items():
        if DROPPED.match(key):
            continue
        for pattern, replacement in KEY_RULES:
            if m := re.match(pattern, key):
                new = m.expand(replacement) + key[m.end() :]
                state[{"POS_G": g, "POS_V": v}.get(new, new)] = tensor
                break
        else:
            unmapped.append(key)
    cfg = model.config
    proj = "feature_projection.projection."
    if proj + "weight" not in state and cfg.conv_dim[-1] == cfg.hidden_size:
        # fairseq drops post_extract_proj when conv and model widths match: identity
        state[proj + "weight"] = torch.eye(cfg.hidden_size)
        state[proj + "bias"] = torch.zeros(cfg.hidden_size)
    return state, unmapped


def _from_fairseq(path: Path) -> tuple[HubertModel, bool]:
    ckpt = load_fairseq_checkpoint(path)
    weights = ckpt.get("model") or {}
    if any(k.startswith("w2v_encoder.") for k in weights):
        raise ValueError(f"{path} is a fine-tuned (CTC) checkpoint; use the pre-trained one")
    model_cfg, task_cfg = fairseq_configs(ckpt)
    model = HubertModel(hubert_config(model_cfg))
    state, unmapped = convert_state_dict(weights, model)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"{path}: weights do not fit its own config: {e}") from None
    if unmapped or result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: cannot convert to HubertModel: fairseq keys with no mapping {unmapped}; "
            f"HF keys left unset {result.missing_keys}; mapped keys HF lacks "
            f"{result.unexpected_keys}"
        )
    return model, bool(task_cfg.get("normalize", False))


def load_hubert(path: str | Path, device: str = "cpu") -> tuple[HubertModel, bool]:
    """``(model in eval mode on device, normalize)`` from an HF folder or a fairseq ``.pt``.

    ``normalize`` says whether the model expects each wave scaled to zero mean, unit variance.
    """
    path = Path(path)
    if path.is_dir():
        model = HubertModel.from_pretrained(path, dtype=torch.float32)
        pre = path / "preprocessor_config.json"
        normalize = pre.exists() and bool(json.loads(pre.read_text()).get("do_normalize"))
    else:
        model, normalize = _from_fairseq(path)
    return model.to(device).eval(), normalize


def fold_weight_norm(conv: torch.nn.Module) -> None:
    """Replace a conv's weight norm (``g·v/‖v‖`` recomputed on every call) by its value."""
    if parametrize.is_parametrized(conv, "weight"):
        parametrize.remove_parametrizations(conv, "weight")
    elif hasattr(conv, "weight_g"):  # the older torch.nn.utils.weight_norm hook
        torch.nn.utils.remove_weight_norm(conv)


class Fp32Conv(torch.nn.Module):
    """A convolution kept in fp32 inside a bf16 model. oneDNN's bf16 kernel for HuBERT's
    grouped positional convolution (kernel 128, 16 groups) is wrong on CPUs with AMX
    (cosine 0.10 to fp32 measured on a Xeon with amx_bf16; 0.99999 without AMX)."""

    def __init__(self, conv: torch.nn.Conv1d):
        super().__init__()
        self.conv = conv.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.conv(x.float()).to(x.dtype)


class HubertFeatures:
    """HuBERT ``hidden_states[layer]`` at 50 Hz: ``features(waves) -> [(frames, dim)]`` float32.

    With ``bf16`` the convolution and linear weights are cast once at load and the model runs
    in bf16 as CPU ``torch.autocast`` runs it (same results), without recasting the weights on
    every forward pass. Norm layers keep fp32 weights (PyTorch's mixed-precision kernels); on
    CPU the positional convolution stays fp32 too (``Fp32Conv``).
    """

    name = "hubert"

    def __init__(self, path: str | Path, layer: int = 11, device: str = "cpu", bf16: bool = False):
        self.model, self.normalize = load_hubert(path, device)
        config = self.model.config
        if not 0 <= layer <= config.num_hidden_layers:
            raise ValueError(f"layer {layer} outside 0..{config.num_hidden_layers}")
        encoder = self.model.encoder
        # the encoder's output becomes hidden_states[layer]: later layers are never run, and
        # a pre-LN encoder's final layer norm is not applied to it (fairseq's output_layer)
        encoder.layers = encoder.layers[:layer]
        if config.do_stable_layer_norm:
            encoder.layer_norm = torch.nn.Identity()
        fold_weight_norm(encoder.pos_conv_embed.conv)
        if bf16:
            positional = encoder.pos_conv_embed
            keep = positional.conv if torch.device(device).type == "cpu" else None
            for module in self.model.modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)) and module is not keep:
                    module.to(torch.bfloat16)
            if keep is not None:
                positional.conv = Fp32Conv(keep)
        self.layer, self.dim = layer, config.hidden_size
        self.device, self.bf16 = torch.device(device), bf16
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self._convs = list(zip(config.conv_kernel, config.conv_stride, strict=True))
        # HuBERT-base ("group" norm) was trained without attention masks, as fairseq runs it;
        # only masked models' features are unchanged by a padded batch
        self.masked = config.feat_extract_norm == "layer"

    def frames(self, num_samples: int) -> int:
        """Output frames for a wave of ``num_samples`` (100 s chunks counted separately)."""
        full, rest = divmod(num_samples, MAX_CHUNK)
        return full * self._conv_frames(MAX_CHUNK) + self._conv_frames(rest)

    def features(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Each wave's features, unchanged (up to float rounding) by the waves batched with it.

        Without an attention mask (HuBERT-base) zero padding would change a shorter wave's
        features (GroupNorm statistics, attention), so each wave then gets its own forward
        pass: on CPU that measured no slower than padded batches (benchmarks/RESULTS.md).
        """
        waves = [self._prepare(w) for w in waves]
        out: list[np.ndarray | None] = [None] * len(waves)
        short = [i for i, w in enumerate(waves) if len(w) <= MAX_CHUNK]
        for group in [short] if self.masked else [[i] for i in short]:
            for i, feats in zip(group, self._forward([waves[i] for i in group]), strict=True):
                out[i] = feats
        for i, wave in enumerate(waves):
            if out[i] is None:  # long audio: one 100 s chunk per pass, as fairseq
                chunks = [wave[s : s + MAX_CHUNK] for s in range(0, len(wave), MAX_CHUNK)]
                out[i] = np.concatenate([self._forward([c])[0] for c in chunks])
        return out

    def _prepare(self, wave: np.ndarray) -> np.ndarray:
        x = np.asarray(wave, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a mono 1-D wave, got shape {x.shape}")
        if self.normalize and len(x):  # whole wave, before chunking, as fairseq
            x = torch.nn.functional.layer_norm(torch.from_numpy(x), x.shape).numpy()
        return x

    def _conv_frames(self, n: int) -> int:
        for kernel, stride in self._convs:
            if n < kernel:
                return 0
            n = (n - kernel) // stride + 1
        return n

    def _forward(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """One padded batch through the model, each output trimmed to its own frames."""
        frames = [self._conv_frames(len(w)) for w in waves]
        out = [np.zeros((0, self.dim), np.float32) for _ in waves]
        rows = [i for i, n in enumerate(frames) if n > 0]  # too short for one frame: empty
        if not rows:
            return out
        x = torch.zeros(len(rows), max(len(waves[i]) for i in rows))
        mask = torch.zeros(x.shape, dtype=torch.long)
        for row, i in enumerate(rows):
            x[row, : len(waves[i])] = torch.from_numpy(waves[i])
            mask[row, : len(waves[i])] = 1
        with torch.inference_mode():
            hidden = self.model(
                x.to(self.device, self.dtype),
                attention_mask=mask.to(self.device) if self.masked else None,
            ).last_hidden_state
        hidden = hidden.float().cpu().numpy()
        for row, i in enumerate(rows):
            out[i] = np.ascontiguousarray(hidden[row, : frames[i]])
        return out
