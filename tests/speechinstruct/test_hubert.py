"""HuBERT features: a tiny fairseq-format checkpoint converted in-process equals HubertModel."""

import json
import os

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel

from speechinstruct.checkpoints import UnsafeCheckpointError
from speechinstruct.extractors import hubert
from speechinstruct.extractors.hubert import (
    Fp32Conv,
    HubertFeatures,
    load_hubert,
    parse_conv_layers,
)
from tests.speechinstruct.test_checkpoints import RunsCommand, hubert_cfg, save_fairseq

LAYERS, DIM, HEADS, FFN, POS, POS_GROUPS = 2, 32, 4, 64, 16, 4


def tiny_cfg(conv_dim: int = 16, layer_norm: bool = False) -> dict:
    """A 2-layer HuBERT config; conv width ≠ model width, as in base (512 → 768)."""
    spec = f"[({conv_dim},10,5)] + [({conv_dim},3,2)] * 4 + [({conv_dim},2,2)] * 2"
    return hubert_cfg(
        encoder_layers=LAYERS,
        encoder_embed_dim=DIM,
        encoder_attention_heads=HEADS,
        encoder_ffn_embed_dim=FFN,
        conv_feature_layers=spec,
        conv_pos=POS,
        conv_pos_groups=POS_GROUPS,
        final_dim=8,
        extractor_mode="layer_norm" if layer_norm else "default",
        layer_norm_first=layer_norm,
        conv_bias=layer_norm,
    )


def fairseq_weights(conv_dim: int = 16, layer_norm: bool = False, seed: int = 0) -> dict:
    """Random weights under the names fairseq's HubertModel.state_dict() uses."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def norm(prefix: str, n: int) -> dict:
        return {prefix + "weight": 1 + rand(n, scale=0.1), prefix + "bias": rand(n, scale=0.1)}

    w = {"label_embs_concat": rand(12, 8), "mask_emb": rand(DIM)}
    for i, (cin, k) in enumerate([(1, 10)] + [(conv_dim, 3)] * 4 + [(conv_dim, 2)] * 2):
        conv = f"feature_extractor.conv_layers.{i}."
        w[conv + "0.weight"] = rand(conv_dim, cin, k, scale=0.5)
        if layer_norm:  # Sequential(conv, dropout, Sequential(TransposeLast, LayerNorm, …), gelu)
            w[conv + "0.bias"] = rand(conv_dim)
            w |= norm(conv + "2.1.", conv_dim)
        elif i == 0:  # Sequential(conv, dropout, GroupNorm, gelu) on the first layer only
            w |= norm(conv + "2.", conv_dim)
    w |= norm("layer_norm.", conv_dim)
    if conv_dim != DIM:
        w |= {"post_extract_proj.weight": rand(DIM, conv_dim), "post_extract_proj.bias": rand(DIM)}
    w |= {
        "encoder.pos_conv.0.bias": rand(DIM),
        "encoder.pos_conv.0.weight_g": 1 + rand(1, 1, POS),
        "encoder.pos_conv.0.weight_v": rand(DIM, DIM // POS_GROUPS, POS),
    }
    for i in range(LAYERS):
        layer = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            w[f"{layer}self_attn.{proj}.weight"] = rand(DIM, DIM)
            w[f"{layer}self_attn.{proj}.bias"] = rand(DIM)
        w |= norm(layer + "self_attn_layer_norm.", DIM) | norm(layer + "final_layer_norm.", DIM)
        w |= {
            layer + "fc1.weight": rand(FFN, DIM),
            layer + "fc1.bias": rand(FFN),
            layer + "fc2.weight": rand(DIM, FFN),
            layer + "fc2.bias": rand(DIM),
        }
    w |= norm("encoder.layer_norm.", DIM)
    w |= {"final_proj.weight": rand(8, DIM), "final_proj.bias": rand(8)}
    return w


def reference_model(w: dict, conv_dim: int = 16, layer_norm: bool = False) -> HubertModel:
    """HubertModel built directly and filled module by module from the fairseq weights."""
    config = HubertConfig(
        hidden_size=DIM,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        conv_dim=[conv_dim] * 7,
        conv_kernel=[10, 3, 3, 3, 3, 2, 2],
        conv_stride=[5, 2, 2, 2, 2, 2, 2],
        num_conv_pos_embeddings=POS,
        num_conv_pos_embedding_groups=POS_GROUPS,
        conv_bias=layer_norm,
        feat_extract_norm="layer" if layer_norm else "group",
        do_stable_layer_norm=layer_norm,
    )
    model = HubertModel(config).eval()

    def put(module: torch.nn.Module, prefix: str, names=("weight", "bias")) -> None:
        for name in names:
            getattr(module, name).data.copy_(w[prefix + name])

    with torch.no_grad():
        model.masked_spec_embed.copy_(w["mask_emb"])
        for i, conv in enumerate(model.feature_extractor.conv_layers):
            names = ("weight", "bias") if layer_norm else ("weight",)
            put(conv.conv, f"feature_extractor.conv_layers.{i}.0.", names)
            if layer_norm:
                put(conv.layer_norm, f"feature_extractor.conv_layers.{i}.2.1.")
            elif i == 0:
                put(conv.layer_norm, "feature_extractor.conv_layers.0.2.")
        put(model.feature_projection.layer_norm, "layer_norm.")
        proj = model.feature_projection.projection
        if conv_dim != DIM:
            put(proj, "post_extract_proj.")
        else:
            proj.weight.copy_(torch.eye(DIM))
            proj.bias.zero_()
        pos = model.encoder.pos_conv_embed.conv
        pos.bias.copy_(w["encoder.pos_conv.0.bias"])
        pos.parametrizations.weight.original0.copy_(w["encoder.pos_conv.0.weight_g"])
        pos.parametrizations.weight.original1.copy_(w["encoder.pos_conv.0.weight_v"])
        for i, layer in enumerate(model.encoder.layers):
            fs = f"encoder.layers.{i}."
            for proj_name in ("k_proj", "v_proj", "q_proj", "out_proj"):
                put(getattr(layer.attention, proj_name), f"{fs}self_attn.{proj_name}.")
            put(layer.layer_norm, fs + "self_attn_layer_norm.")
            put(layer.feed_forward.intermediate_dense, fs + "fc1.")
            put(layer.feed_forward.output_dense, fs + "fc2.")
            put(layer.final_layer_norm, fs + "final_layer_norm.")
        put(model.encoder.layer_norm, "encoder.layer_norm.")
    return model


def reference_features(
    model: HubertModel, wave: np.ndarray, layer: int, mask: bool = False
) -> np.ndarray:
    x = torch.from_numpy(wave)[None]
    with torch.inference_mode():
        out = model(
            x, attention_mask=torch.ones_like(x).long() if mask else None, output_hidden_states=True
        )
    return out.hidden_states[layer][0].float().numpy()


def waves(*lengths: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * 0.3).astype(np.float32) for n in lengths]


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("hubert") / "tiny_hubert.pt"
    save_fairseq(path, fairseq_weights(), tiny_cfg(), as_omegaconf=True)
    return path


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_converted_fairseq_checkpoint_equals_direct_hubert_model(tiny_pt, layer):
    ref = reference_model(fairseq_weights())
    features = HubertFeatures(tiny_pt, layer=layer)
    assert (features.name, features.layer, features.dim) == ("hubert", layer, DIM)
    assert features.normalize is False
    (wave,) = waves(8000)
    (ours,) = features.features([wave])
    expected = reference_features(ref, wave, layer)
    assert ours.dtype == np.float32 and ours.shape == (24, DIM) == expected.shape
    assert np.abs(ours - expected).max() < 1e-5


@pytest.mark.parametrize(
    ("conv_dim", "layer_norm", "layer"), [(32, False, 1), (16, True, 1), (16, True, 2)]
)
def test_identity_projection_and_layer_norm_extractor(tmp_path, conv_dim, layer_norm, layer):
    """Equal widths (no post_extract_proj in fairseq), and the layer-norm-first variant, whose
    last layer's hidden state comes without the encoder's final layer norm (as fairseq)."""
    weights = fairseq_weights(conv_dim, layer_norm)
    path = tmp_path / "variant.pt"
    save_fairseq(path, weights, tiny_cfg(conv_dim, layer_norm))
    (wave,) = waves(6000)
    (ours,) = HubertFeatures(path, layer=layer).features([wave])
    expected = reference_features(reference_model(weights, conv_dim, layer_norm), wave, layer)
    assert np.abs(ours - expected).max() < 1e-5


def test_hf_folder_and_normalization(tmp_path):
    ref = reference_model(fairseq_weights())
    ref.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    model, normalize = load_hubert(tmp_path)
    assert normalize and isinstance(model, HubertModel) and not model.training
    (wave,) = waves(5000)
    wave = wave * 3 + 0.5
    (ours,) = HubertFeatures(tmp_path, layer=2).features([wave])
    normed = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-5)  # fairseq: F.layer_norm(x, x.shape)
    assert np.abs(ours - reference_features(ref, normed.astype(np.float32), 2)).max() < 1e-4


def test_batch_of_different_lengths(tiny_pt, tmp_path):
    lengths = (16000, 9000, 3210, 399, 400)
    batch = waves(*lengths)
    features = HubertFeatures(tiny_pt, layer=2)
    together = features.features(batch)
    alone = [features.features([w])[0] for w in batch]
    assert [len(f) for f in together] == [len(f) for f in alone] == [49, 27, 9, 0, 1]
    assert [features.frames(n) for n in lengths] == [49, 27, 9, 0, 1]
    # HuBERT-base runs without an attention mask (as fairseq): padding would move the shorter
    # waves' features, so each wave gets its own forward pass and batching changes nothing
    assert not features.masked
    for t, a in zip(together, alone, strict=True):
        np.testing.assert_array_equal(t, a)
    padded = features._forward(batch[:3])  # what one padded batch would give instead
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    for p, a in zip(padded[1:], alone[1:3], strict=True):
        assert np.abs(p - a).mean() > 0.1 * a.std()
    # the layer-norm variant gets an attention mask, so one padded batch leaves features as alone
    path = tmp_path / "masked.pt"
    save_fairseq(path, fairseq_weights(layer_norm=True), tiny_cfg(layer_norm=True))
    masked = HubertFeatures(path, layer=2)
    assert masked.masked
    for t, w in zip(masked.features(batch), batch, strict=True):
        assert np.abs(t - masked.features([w])[0]).max(initial=0) < 1e-4


def test_long_audio_in_chunks(tiny_pt, monkeypatch):
    monkeypatch.setattr(hubert, "MAX_CHUNK", 4000)  # stands in for fairseq's 100 s
    features = HubertFeatures(tiny_pt, layer=2)
    (wave,) = waves(10000)
    (ours,) = features.features([wave])
    chunks = [features.features([wave[s : s + 4000]])[0] for s in (0, 4000, 8000)]
    assert len(ours) == features.frames(len(wave)) == 12 + 12 + 6 == sum(map(len, chunks))
    np.testing.assert_array_equal(ours, np.concatenate(chunks))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_bf16_weights_equal_autocast_and_stay_close_to_fp32(tmp_path, layer_norm):
    """bf16 casts linear and conv weights once; norms and the positional convolution keep
    fp32 weights. That computes what ``torch.autocast`` computes from the fp32 model with its
    positional convolution kept in fp32, and stays close to fp32 (also on AMX CPUs, where
    oneDNN's bf16 grouped convolution is wrong)."""
    weights = fairseq_weights(layer_norm=layer_norm)
    path = tmp_path / "model.pt"
    save_fairseq(path, weights, tiny_cfg(layer_norm=layer_norm))
    wave = waves(8000, 5000)
    fp32 = HubertFeatures(path, layer=2).features(wave)
    features = HubertFeatures(path, layer=2, bf16=True)
    bf16 = [features.features([w])[0] for w in wave]  # a batch's shape moves bf16 rounding
    encoder = features.model.encoder
    assert encoder.layers[0].feed_forward.intermediate_dense.weight.dtype == torch.bfloat16
    assert features.model.feature_extractor.conv_layers[0].conv.weight.dtype == torch.bfloat16
    assert encoder.pos_conv_embed.conv.conv.weight.dtype == torch.float32
    assert encoder.layers[0].final_layer_norm.weight.dtype == torch.float32
    ref = reference_model(weights, layer_norm=layer_norm)
    ref.encoder.pos_conv_embed.conv = Fp32Conv(ref.encoder.pos_conv_embed.conv)
    for ours, exact, w in zip(bf16, fp32, wave, strict=True):
        assert ours.dtype == np.float32 and ours.shape == exact.shape
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = reference_features(ref, w, 2, mask=features.masked)
        assert np.abs(ours - autocast).max() < 1e-6 * np.abs(autocast).max()
        cosine = torch.nn.functional.cosine_similarity(
            torch.from_numpy(ours), torch.from_numpy(exact), dim=1
        )
        assert cosine.min() > 0.999  # measured 0.9999+ on these random weights


def test_checkpoint_with_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    save_fairseq(path, fairseq_weights(), tiny_cfg(), extra_hook=RunsCommand())
    with pytest.raises(UnsafeCheckpointError, match=f"{os.system.__module__}.system"):
        HubertFeatures(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_unmapped_and_missing_keys_are_listed(tmp_path):
    weights = fairseq_weights()
    weights["encoder.extra.weight"] = torch.zeros(2)
    del weights["encoder.layer_norm.bias"]
    path = tmp_path / "odd.pt"
    save_fairseq(path, weights, tiny_cfg())
    with pytest.raises(ValueError, match=r"encoder\.extra\.weight") as err:
        load_hubert(path)
    assert "encoder.layer_norm.bias" in str(err.value)


def test_parse_conv_layers_without_eval():
    spec = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
    assert parse_conv_layers(spec) == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    for bad in ("__import__('os').system('true')", "[(1,1,1)] * 10**9", "[(1, 2)]", "[]"):
        with pytest.raises(ValueError):
            parse_conv_layers(bad)
