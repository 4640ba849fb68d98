"""Read pickled third-party files (fairseq ``.pt``, joblib/sklearn k-means) through allow-lists.

Nothing from fairseq, omegaconf or sklearn is imported: the classes those files name are
replaced by inert stand-ins that only hold the pickled state, and any other global is refused
before it is looked up, so loading a file never runs code the file asks for.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import re
import zipfile
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch


class UnsafeCheckpointError(ValueError):
    """A pickled file names a global outside the allow-list, so it is refused unread."""


class StandIn:
    """Inert placeholder for a pickled class: keeps constructor args and state, runs nothing."""

    pickled_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        self = object.__new__(cls)
        self.args, self.state = args, None
        return self

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.pickled_name}>"


class FairseqDictionary(StandIn):
    pickled_name = "fairseq.data.dictionary.Dictionary"


class _Namespace(StandIn):
    pickled_name = "argparse.Namespace"


class _DictConfig(StandIn):
    pickled_name = "omegaconf.dictconfig.DictConfig"


class _ListConfig(StandIn):
    pickled_name = "omegaconf.listconfig.ListConfig"


class _ValueNode(StandIn):
    """Any ``omegaconf.nodes`` leaf (AnyNode, StringNode, IntegerNode, …): the value is ``_val``."""


def _empty_dict(*_args: Any) -> dict:
    # omegaconf's ``resolver_cache`` is ``defaultdict(dict)``: rebuilt as a plain dict
    return {}


def _marker(*_args: Any) -> StandIn:
    # ``typing.Optional[int]`` pickles as getitem(Union, (int, type(None))): metadata only
    return StandIn()


@cache
def _stand_in_class(name: str, base: type = StandIn) -> type:
    return type(name.rsplit(".", 1)[-1], (base,), {"pickled_name": name})


@cache
def numpy_globals() -> dict[str, Any]:
    """Numpy's own reconstruction globals (arrays, dtypes, scalars) under their pickled names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric

    out: dict[str, Any] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    for module in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x spell the module apart
        out[f"{module}.multiarray._reconstruct"] = multiarray._reconstruct
        out[f"{module}.multiarray.scalar"] = multiarray.scalar
        out[f"{module}.numeric._frombuffer"] = numeric._frombuffer
    for name in dir(np.dtypes):
        cls = getattr(np.dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            out[f"numpy.dtypes.{name}"] = cls
    return out


_PLAIN_TYPES = {f"builtins.{t.__name__}": t for t in (dict, list, tuple, int, float, str, bool)}
_FAIRSEQ_STAND_INS: dict[str, Any] = {
    FairseqDictionary.pickled_name: FairseqDictionary,
    _Namespace.pickled_name: _Namespace,
    _DictConfig.pickled_name: _DictConfig,
    _ListConfig.pickled_name: _ListConfig,
    "collections.defaultdict": _empty_dict,
    "_operator.getitem": _marker,
    "builtins.type": _marker,
    **_PLAIN_TYPES,
}


def _fairseq_allowed(name: str) -> Any | None:
    """What a global named in a fairseq checkpoint loads as, or None if it is refused."""
    if name in _FAIRSEQ_STAND_INS:
        return _FAIRSEQ_STAND_INS[name]
    if name in numpy_globals():
        return numpy_globals()[name]
    if name.startswith("omegaconf.nodes."):
        return _stand_in_class(name, _ValueNode)
    # config dataclasses (structured configs' object_type), omegaconf metadata, type hints
    if name.startswith(("fairseq.", "omegaconf.", "typing.")):
        return _stand_in_class(name)
    return None


def _refuse(path: str | Path, names: list[str]) -> UnsafeCheckpointError:
    listed = ", ".join(sorted(names))
    return UnsafeCheckpointError(
        f"refused to load {path}: it references {listed}, which is not on the allow-list of "
        "data-only globals (a pickle naming it could run code); the file was not unpickled"
    )


def load_fairseq_checkpoint(path: str | Path) -> dict:
    """A fairseq ``.pt`` as plain Python (``cfg``/``args`` as dicts, ``model`` as tensors).

    Raises:
        UnsafeCheckpointError: the file names a global outside the allow-list.
    """
    path = str(path)
    is_zip = zipfile.is_zipfile(path)
    if is_zip:  # name every global up front so the error lists them all
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    else:  # legacy (torch < 1.6) format: only the known names, errors surface while loading
        names = list(_FAIRSEQ_STAND_INS)
    allowed = {name: _fairseq_allowed(name) for name in names}
    refused = [name for name, obj in allowed.items() if obj is None]
    if refused:
        raise _refuse(path, refused)
    if any(name.startswith("numpy.") for name in allowed):
        # np.dtype(...) builds instances of numpy.dtypes classes the pickle never names
        allowed |= numpy_globals()
    entries = [(obj, name) for name, obj in allowed.items()]
    try:
        with torch.serialization.safe_globals(entries):
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as e:
        if found := re.findall(r"GLOBAL ([\w.]+)", str(e)):
            raise _refuse(path, found) from None
        reason = str(e).split("WeightsUnpickler error:")[-1].strip().split("\n")[0]
        raise UnsafeCheckpointError(f"refused to load {path}: {reason}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a fairseq checkpoint: it holds a {type(state).__name__}")
    return to_plain(state)


def to_plain(obj: Any) -> Any:
    """Stand-ins of configs and dictionaries → dicts, lists and values; tensors stay tensors."""
    if isinstance(obj, _DictConfig | _ListConfig):
        # ``_content`` is a dict/list of nodes, or None, "???" or an unresolved "${…}" string
        return to_plain((obj.state or {}).get("_content"))
    if isinstance(obj, _ValueNode):
        value = (obj.state or {}).get("_val")
        if isinstance(value, StandIn) and len(value.args) == 1:
            return to_plain(value.args[0])  # an enum member pickles as EnumClass(value)
        return to_plain(value)
    if isinstance(obj, _Namespace | FairseqDictionary):
        return to_plain(dict(obj.state or {}))
    if isinstance(obj, dict):
        plain = {k: to_plain(v) for k, v in obj.items()}
        return OrderedDict(plain) if isinstance(obj, OrderedDict) else plain
    if type(obj) in (list, tuple):
        return type(obj)(to_plain(v) for v in obj)
    return obj


# --- k-means centroids -------------------------------------------------------------------------


class _KMeans(StandIn):
    """A fitted sklearn ``KMeans``/``MiniBatchKMeans``: its ``__dict__`` becomes ``state``."""


def _kmeans_globals() -> dict[str, Any]:
    from joblib.numpy_pickle import NumpyArrayWrapper

    class NumericArrayWrapper(NumpyArrayWrapper):
        """joblib's array record, refusing object arrays (they are nested pickles)."""

        def read(self, unpickler: Any, ensure_native_byte_order: bool) -> np.ndarray:
            if self.dtype.hasobject:
                raise UnsafeCheckpointError("refused: the file holds an object (pickled) array")
            return super().read(unpickler, ensure_native_byte_order)

    out: dict[str, Any] = {**numpy_globals(), **_PLAIN_TYPES}
    out.update({f"builtins.{t.__name__}": t for t in (set, frozenset, complex, bytes)})
    for prefix in ("joblib", "sklearn.externals.joblib"):
        out[f"{prefix}.numpy_pickle.NumpyArrayWrapper"] = NumericArrayWrapper
    for module in ("sklearn.cluster._kmeans", "sklearn.cluster.k_means_"):  # ≥0.22, older
        for cls in ("KMeans", "MiniBatchKMeans"):
            out[f"{module}.{cls}"] = _stand_in_class(f"{module}.{cls}", _KMeans)
    return out


def _joblib_load(path: str) -> Any:
    """``joblib.load`` with ``find_class`` limited to ``_kmeans_globals``."""
    from joblib.numpy_pickle import NumpyUnpickler, _validate_fileobject_and_memmap

    allowed = _kmeans_globals()

    class AllowListUnpickler(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            if self.proto < 3 and self.fix_imports:  # python-2 era names, as pickle does
                if (module, name) in _compat_pickle.NAME_MAPPING:
                    module, name = _compat_pickle.NAME_MAPPING[(module, name)]
                elif module in _compat_pickle.IMPORT_MAPPING:
                    module = _compat_pickle.IMPORT_MAPPING[module]
            full = f"{module}.{name}"
            if full not in allowed:
                raise _refuse(path, [full])
            return allowed[full]

    with open(path, "rb") as f, _validate_fileobject_and_memmap(f, path, None) as (fobj, _):
        return AllowListUnpickler(path, fobj, ensure_native_byte_order=True).load()


def load_kmeans_centroids(path: str | Path) -> np.ndarray:
    """k-means centroids ``(K, D)`` float32 from ``.npy`` or a joblib-dumped sklearn k-means.

    Raises:
        UnsafeCheckpointError: the pickle names a global outside the allow-list.
    """
    path = str(path)
    if path.endswith(".npy"):
        centers = np.load(path, allow_pickle=False)
    else:
        obj = _joblib_load(path)
        centers = obj.state.get("cluster_centers_") if isinstance(obj, _KMeans) else obj
        if not isinstance(centers, np.ndarray):
            raise ValueError(f"{path}: expected a fitted sklearn k-means or an array, got {obj!r}")
    if centers.ndim != 2 or not np.issubdtype(centers.dtype, np.number):
        raise ValueError(f"{path}: centroids must be a numeric (K, D) array, got {centers.shape}")
    return np.ascontiguousarray(centers, dtype=np.float32)
