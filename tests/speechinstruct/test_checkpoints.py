"""Allow-list loading of fairseq checkpoints and sklearn k-means files, built at test time.

fairseq and omegaconf are not installed: look-alike classes carrying their real module and
class names (and pickling the state the real ones pickle) stand in for them while saving.
"""

import contextlib
import copy
import os
import pickle
import sys
import types
from argparse import Namespace
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import MiniBatchKMeans

from speechinstruct.checkpoints import (
    UnsafeCheckpointError,
    load_fairseq_checkpoint,
    load_kmeans_centroids,
)


def lookalike(cls: type, module: str, name: str) -> type:
    cls.__module__, cls.__qualname__, cls.__name__ = module, name, name
    return cls


@contextlib.contextmanager
def importable(*classes: type):
    """Make look-alike classes picklable by name (pickle checks the name resolves), then undo."""
    added = []
    for cls in classes:
        parts = cls.__module__.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        setattr(sys.modules[cls.__module__], cls.__qualname__, cls)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


class Dictionary:
    """fairseq.data.dictionary.Dictionary's pickled attributes."""

    def __init__(self, symbols: list[str]):
        self.bos_word, self.unk_word, self.pad_word, self.eos_word = "<s>", "<unk>", "<pad>", "</s>"
        self.symbols, self.count, self.indices = [], [], {}
        for s in [self.bos_word, self.pad_word, self.eos_word, self.unk_word, *symbols]:
            self.indices[s] = len(self.symbols)
            self.symbols.append(s)
            self.count.append(1)
        self.bos_index, self.pad_index, self.eos_index, self.unk_index = 0, 1, 2, 3
        self.nspecial = 4


lookalike(Dictionary, "fairseq.data.dictionary", "Dictionary")


# omegaconf 2.x as it pickles: containers and nodes drop ``_flags_cache`` in __getstate__
@dataclass
class Metadata:
    ref_type: Any
    object_type: Any
    optional: bool
    key: Any
    flags: dict = field(default_factory=dict)
    flags_root: bool = False
    resolver_cache: dict = field(default_factory=lambda: defaultdict(dict))


@dataclass
class ContainerMetadata(Metadata):
    key_type: Any = None
    element_type: Any = None


class Node:
    def __getstate__(self):
        state = copy.copy(self.__dict__)
        state.pop("_flags_cache", None)
        return state


class DictConfig(Node):
    pass


class ListConfig(Node):
    pass


class AnyNode(Node):
    pass


class StringNode(Node):
    pass


class IntegerNode(Node):
    pass


class FloatNode(Node):
    pass


class BooleanNode(Node):
    pass


class StructuredHubertConfig:
    """A structured config's dataclass, referenced by ``object_type`` in the metadata."""


lookalike(Metadata, "omegaconf.base", "Metadata")
lookalike(ContainerMetadata, "omegaconf.base", "ContainerMetadata")
lookalike(DictConfig, "omegaconf.dictconfig", "DictConfig")
lookalike(ListConfig, "omegaconf.listconfig", "ListConfig")
for _cls in (AnyNode, StringNode, IntegerNode, FloatNode, BooleanNode):
    lookalike(_cls, "omegaconf.nodes", _cls.__name__)
lookalike(StructuredHubertConfig, "fairseq.models.hubert.hubert", "HubertConfig")
FAKES = (
    Dictionary,
    Metadata,
    ContainerMetadata,
    DictConfig,
    ListConfig,
    AnyNode,
    StringNode,
    IntegerNode,
    FloatNode,
    BooleanNode,
    StructuredHubertConfig,
)
NODE_TYPES = {bool: BooleanNode, int: IntegerNode, float: FloatNode, str: StringNode}


def omega(value: Any, key: Any = None, parent: Any = None, object_type: Any = dict) -> Node:
    """A plain value as an omegaconf tree (DictConfig / ListConfig / typed value nodes)."""
    if isinstance(value, dict | list):
        node = (DictConfig if isinstance(value, dict) else ListConfig)()
        meta = ContainerMetadata(
            Any,
            object_type if isinstance(value, dict) else list,
            True,
            key,
            key_type=str,
            element_type=Any,
        )
        node.__dict__.update(_metadata=meta, _parent=parent, _flags_cache=None)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        content = {k: omega(v, k, node) for k, v in items}
        node.__dict__["_content"] = content if isinstance(value, dict) else list(content.values())
        return node
    node = NODE_TYPES.get(type(value), AnyNode)()
    meta = Metadata(type(value) if type(value) in NODE_TYPES else Any, None, True, key)
    node.__dict__.update(_val=value, _metadata=meta, _parent=parent, _flags_cache=None)
    return node


def hubert_cfg(**model: Any) -> dict:
    """``cfg`` sections as a fairseq HuBERT pre-training checkpoint holds them."""
    base = {
        "_name": "hubert",
        "label_rate": 50.0,
        "extractor_mode": "default",
        "encoder_layers": 12,
        "encoder_embed_dim": 768,
        "encoder_ffn_embed_dim": 3072,
        "encoder_attention_heads": 12,
        "activation_fn": "gelu",
        "layer_type": "transformer",
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.05,
        "dropout_input": 0.1,
        "dropout_features": 0.1,
        "final_dim": 256,
        "untie_final_proj": False,
        "layer_norm_first": False,
        "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
        "conv_bias": False,
        "logit_temp": 0.1,
        "target_glu": False,
        "feature_grad_mult": 0.1,
        "mask_length": 10,
        "mask_prob": 0.8,
        "conv_pos": 128,
        "conv_pos_groups": 16,
        "skip_masked": False,
        "skip_nomask": False,
    }
    task = {
        "_name": "hubert_pretraining",
        "data": "/checkpoint/data",
        "labels": ["km"],
        "label_dir": "/checkpoint/labels",
        "label_rate": 50.0,
        "sample_rate": 16000,
        "normalize": False,
        "enable_padding": False,
        "max_keep_size": None,
        "max_sample_size": 250000,
        "min_sample_size": 32000,
        "single_target": False,
        "random_crop": True,
        "pad_audio": False,
    }
    return {
        "_name": None,
        "common": {"fp16": True, "seed": 1337},
        "model": {**base, **model},
        "task": task,
    }


def save_fairseq(
    path,
    model_state: dict,
    cfg: dict | None,
    as_omegaconf: bool = False,
    args: Namespace | None = None,
    **extra: Any,
) -> None:
    """``torch.save`` a dict shaped like fairseq's ``Trainer.state_dict()``."""
    if as_omegaconf and cfg is not None:
        cfg = omega(cfg)
        # a structured config: the model section's metadata names its dataclass
        cfg._content["model"]._metadata.object_type = StructuredHubertConfig
    state = {
        "args": args,
        "cfg": cfg,
        "model": model_state,
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "HubertCriterion",
                "optimizer_name": "Adam",
                "lr_scheduler_state": {"best": None},
                "num_updates": 400000,
            }
        ],
        "task_state": {"dictionaries": [Dictionary([str(i) for i in range(8)])]},
        "extra_state": {"metrics": {}, "previous_training_time": 1.5, **extra},
    }
    with importable(*FAKES):
        torch.save(state, path)


def test_omegaconf_cfg_and_dictionary_load_as_plain_python(tmp_path):
    path = tmp_path / "hubert.pt"
    save_fairseq(path, {"mask_emb": torch.ones(4)}, hubert_cfg(), as_omegaconf=True)
    assert not any(m.split(".")[0] in ("fairseq", "omegaconf") for m in sys.modules)
    ckpt = load_fairseq_checkpoint(path)
    assert ckpt["cfg"] == hubert_cfg()  # nodes' values, lists and None kept as they were
    assert ckpt["cfg"]["model"]["extractor_mode"] == "default"
    assert ckpt["cfg"]["task"]["normalize"] is False
    assert ckpt["cfg"]["task"]["labels"] == ["km"]
    (dictionary,) = ckpt["task_state"]["dictionaries"]
    assert dictionary["symbols"][:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert dictionary["indices"]["7"] == 11
    torch.testing.assert_close(ckpt["model"]["mask_emb"], torch.ones(4))
    assert not any(m.split(".")[0] in ("fairseq", "omegaconf") for m in sys.modules)


def test_plain_cfg_namespace_args_and_numpy_scalars(tmp_path):
    path = tmp_path / "old.pt"
    args = Namespace(arch="hubert", normalize=True, encoder_layers=2, labels=["km"])
    save_fairseq(path, {}, None, args=args, best=np.float64(2.5), steps=np.int64(7))
    ckpt = load_fairseq_checkpoint(path)
    assert ckpt["args"] == {
        "arch": "hubert",
        "normalize": True,
        "encoder_layers": 2,
        "labels": ["km"],
    }
    assert ckpt["cfg"] is None
    assert ckpt["extra_state"]["best"] == 2.5 and ckpt["extra_state"]["steps"] == 7

    save_fairseq(path, {}, hubert_cfg(normalize=True))  # newer fairseq: cfg already a dict
    assert load_fairseq_checkpoint(path)["cfg"]["model"]["normalize"] is True


class RunsCommand:
    def __reduce__(self):
        return os.system, ("echo pwned > pwned.txt",)


class Evaluates:
    def __reduce__(self):
        return eval, ("1 + 1",)


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (RunsCommand(), f"{os.system.__module__}.system"),  # os.system pickles as posix.system
        (Evaluates(), "builtins.eval"),
    ],
)
def test_fairseq_checkpoint_with_code_is_refused(tmp_path, monkeypatch, payload, name):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    save_fairseq(path, {"w": torch.zeros(2)}, hubert_cfg(), extra_hook=payload)
    with pytest.raises(UnsafeCheckpointError, match="refused") as err:
        load_fairseq_checkpoint(path)
    assert name in str(err.value)
    assert not (tmp_path / "pwned.txt").exists()


def fitted_kmeans(k: int = 8) -> MiniBatchKMeans:
    data = np.random.default_rng(0).standard_normal((400, 6)).astype(np.float32)
    return MiniBatchKMeans(n_clusters=k, n_init=1, random_state=0).fit(data)


@pytest.mark.parametrize("compress", [0, 3])
def test_kmeans_centroids_from_joblib_dump(tmp_path, compress):
    km = fitted_kmeans()
    path = tmp_path / "km.bin"
    joblib.dump(km, path, compress=compress)
    centroids = load_kmeans_centroids(path)
    assert centroids.dtype == np.float32 and centroids.shape == (8, 6)
    np.testing.assert_array_equal(centroids, km.cluster_centers_.astype(np.float32))


def test_kmeans_centroids_from_npy(tmp_path):
    km = fitted_kmeans()
    np.save(tmp_path / "c.npy", km.cluster_centers_)
    np.testing.assert_array_equal(load_kmeans_centroids(tmp_path / "c.npy"), km.cluster_centers_)


def test_kmeans_pickle_with_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i, dump in enumerate([joblib.dump, lambda obj, p: p.write_bytes(pickle.dumps(obj))]):
        path = tmp_path / f"evil{i}.pkl"
        dump(RunsCommand(), path)
        with pytest.raises(UnsafeCheckpointError, match=f"{os.system.__module__}.system"):
            load_kmeans_centroids(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_kmeans_object_array_is_refused(tmp_path):
    path = tmp_path / "objects.bin"
    joblib.dump(np.array([[1, "a"]], dtype=object), path)
    with pytest.raises(UnsafeCheckpointError, match="object"):
        load_kmeans_centroids(path)
