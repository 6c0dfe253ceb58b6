"""Hugging Face safetensors <-> ``LlamaModel`` parameters: load (optionally sharded) and export.

    policy = load_hf("path/to/checkpoint", dtype="bfloat16")            # one device
    policy = load_hf(path, dtype="float32", layout=Layout(mesh))        # placed on a mesh
    export_hf(policy, "out/dir")            # model.safetensors + config.json for transformers

Name mapping (torch ``Linear.weight`` is ``[out, in]``; our kernels are ``[in, out]``, so those
tensors are transposed on load and export):

    model.embed_tokens.weight                        embed_tokens/embedding
    model.layers.{i}.input_layernorm.weight          layers/{i}/input_layernorm/scale
    model.layers.{i}.self_attn.{q,k,v,o}_proj.weight layers/{i}/attn/{q,k,v,o}_proj/kernel (T)
    model.layers.{i}.self_attn.{q,k,v,o}_proj.bias   layers/{i}/attn/{q,k,v,o}_proj/bias
    model.layers.{i}.self_attn.{q,k}_norm.weight     layers/{i}/attn/{q,k}_norm/scale
    model.layers.{i}.post_attention_layernorm.weight layers/{i}/post_attention_layernorm/scale
    model.layers.{i}.mlp.{gate,up,down}_proj.weight  layers/{i}/mlp/{gate,up,down}_proj/kernel (T)
    model.norm.weight                                norm/scale
    lm_head.weight                                   lm_head/kernel (T; absent when tied)

Loading reads one tensor at a time (memory-mapped), converts it to the parameter dtype on the
host and ``jax.device_put``-s it straight to its ``NamedSharding`` (from the layout's partition
rules) when a layout is given, so no device ever holds the whole model unsharded.
"""

from __future__ import annotations

import json
import os
import re
import struct
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import save_file

from cliffjax.distributed.partition import path_str, spec_for
from cliffjax.models.llama.config import LlamaConfig, from_hf_config
from cliffjax.models.llama.modeling import LlamaModel
from cliffjax.models.lora import ADAPTER_LEAVES, LoRAConfig, merged_params
from cliffjax.models.policy import Policy

_TRANSPOSED = re.compile(r"(_proj/kernel|lm_head/kernel)$")
_ST_DTYPES = {"BF16": jnp.bfloat16, "F16": np.float16, "F32": np.float32, "F64": np.float64}


def hf_name(path: str) -> str:
    """The Hugging Face tensor name of a parameter path (``layers/0/attn/q_proj/kernel``)."""
    if path == "lm_head/kernel":
        return "lm_head.weight"
    name = path.replace("/attn/", "/self_attn/")
    name = re.sub(r"/(kernel|scale|embedding)$", "/weight", name)
    return "model." + name.replace("/", ".")


def abstract_model(cfg: LlamaConfig) -> tuple[Any, Any]:
    """``(graphdef, abstract params)`` of a ``LlamaModel``; no memory is allocated."""

    def build() -> LlamaModel:
        with nnx.use_eager_sharding(False):
            return LlamaModel(cfg)

    graphdef, state = nnx.split(nnx.eval_shape(build))
    return graphdef, state


def read_config(path: str) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory."""
    file = os.path.join(path, "config.json")
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no config.json in checkpoint directory {path!r}")
    with open(file) as f:
        return json.load(f)


def tensor_files(path: str) -> dict[str, str]:
    """Tensor name -> safetensors file, from ``model.safetensors.index.json`` (sharded) or the
    single ``*.safetensors`` file(s) of the directory."""
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return {name: os.path.join(path, file) for name, file in weight_map.items()}
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in checkpoint directory {path!r}")
    out: dict[str, str] = {}
    for file in files:
        full = os.path.join(path, file)
        with safe_open(full, framework="numpy") as f:
            for name in f.keys():
                out[name] = full
    return out


def _read_raw(file: str, name: str) -> np.ndarray:
    """One tensor by its header offsets (for dtypes numpy lacks, e.g. bfloat16)."""
    with open(file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    info = header[name]
    if info["dtype"] not in _ST_DTYPES:
        raise ValueError(f"tensor {name!r}: unsupported safetensors dtype {info['dtype']}")
    lo, hi = info["data_offsets"]
    buf = np.memmap(file, dtype=np.uint8, mode="r", offset=8 + n + lo, shape=(hi - lo,))
    return buf.view(_ST_DTYPES[info["dtype"]]).reshape(info["shape"])


def read_tensor(file: str, name: str) -> np.ndarray:
    """One tensor from a safetensors file as a numpy array (bfloat16 as ``jnp.bfloat16``)."""
    with safe_open(file, framework="numpy") as f:
        if f.get_slice(name).get_dtype() in ("BF16", "bfloat16"):
            return _read_raw(file, name)
        return f.get_tensor(name)


def load_hf(
    path: str,
    dtype: str = "float32",
    param_dtype: str | None = None,
    layout: Any = None,
    lora: LoRAConfig | None = None,
) -> Policy:
    """Load a Llama / Qwen2 / Qwen3 checkpoint directory as a ``Policy``.

    Args:
      path: directory with ``config.json`` and ``model.safetensors`` (or sharded files plus
        ``model.safetensors.index.json``).
      dtype: compute dtype; ``param_dtype`` (default ``dtype``) is the storage dtype.
      layout: a ``cliffjax.distributed.Layout`` (or anything with ``.mesh`` and
        ``.rule_set``): each tensor goes straight to its sharding on that mesh. None: the
        default device.
      lora: LoRA adapters to add (``cliffjax.models.lora``): ``lora_a`` of each targeted
        projection is drawn uniform in ``±1/√d_in`` from ``lora.seed`` and ``lora_b`` is zero,
        so the loaded model computes exactly the checkpoint's function.
    Raises:
      ValueError naming the tensor for a missing tensor, an unexpected tensor, or a shape
      mismatch (with both shapes); and for unsupported config fields (``from_hf_config``).
    """
    cfg = from_hf_config(read_config(path), dtype=dtype, param_dtype=param_dtype, lora=lora)
    graphdef, abstract = abstract_model(cfg)
    files = tensor_files(path)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    wanted = {hf_name(path_str(p)): path_str(p) for p, _ in leaves if not _is_adapter(p)}
    ignorable = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    unexpected = sorted(
        n for n in files if n not in wanted and n not in ignorable and "rotary_emb" not in n
    )
    if unexpected:
        raise ValueError(f"checkpoint {path!r} has unexpected tensors: {unexpected}")
    missing = sorted(n for n in wanted if n not in files)
    if missing:
        raise ValueError(f"checkpoint {path!r} is missing tensors: {missing}")
    values = []
    for i, (p, leaf) in enumerate(leaves):
        pstr = path_str(p)
        if _is_adapter(p):  # not in the checkpoint: a fresh adapter
            values.append(_place(_init_adapter(pstr, leaf.shape, cfg.lora.seed, i), pstr, layout))
            continue
        name = hf_name(pstr)
        array = read_tensor(files[name], name)
        if _TRANSPOSED.search(pstr):
            array = array.T
        if tuple(array.shape) != tuple(leaf.shape):
            raise ValueError(
                f"tensor {name!r} has shape {tuple(array.shape)} in the checkpoint but the "
                f"config expects {tuple(leaf.shape)} (parameter {pstr})"
            )
        values.append(_place(np.ascontiguousarray(array.astype(leaf.dtype)), pstr, layout))
        del array
    params = jax.tree_util.tree_unflatten(treedef, values)
    return Policy(graphdef, params)


def _place(array: np.ndarray, pstr: str, layout: Any) -> jax.Array:
    """``array`` on the default device, or on its sharding of ``layout``'s mesh."""
    if layout is None:
        return jax.device_put(array)
    spec = spec_for(pstr, array.shape, dict(layout.mesh.shape), layout.rule_set).spec
    return jax.device_put(array, jax.sharding.NamedSharding(layout.mesh, spec))


def _is_adapter(path: Any) -> bool:
    return path_str(path).rsplit("/", 1)[-1] in ADAPTER_LEAVES


def _init_adapter(pstr: str, shape: tuple[int, ...], seed: int, index: int) -> np.ndarray:
    """``lora_a``: uniform in ``±1/√d_in`` (PEFT's default); ``lora_b``: zeros."""
    if pstr.endswith("lora_b"):
        return np.zeros(shape, np.float32)
    bound = 1.0 / np.sqrt(shape[0])
    key = jax.random.fold_in(jax.random.key(seed), index)
    return np.asarray(jax.random.uniform(key, shape, jnp.float32, -bound, bound))


def export_hf(graphdef: Any, params: Any, out_dir: str, dtype: str | None = None) -> dict[str, Any]:
    """Write ``model.safetensors`` and ``config.json`` that ``transformers`` loads back.

    LoRA adapters are merged first (``W + s·A B``, ``cliffjax.models.lora.merged_params``), so
    the written checkpoint computes what the adapted policy computes.

    Args:
      graphdef, params: a (possibly trained or sharded) ``LlamaModel`` policy.
      out_dir: created if needed.
      dtype: storage dtype of the written tensors (default: the parameters' dtype).
    Returns:
      the written ``config.json`` dict.
    """
    model = nnx.merge(graphdef, params)
    cfg: LlamaConfig = model.config
    params = merged_params(params, cfg.lora.scale)
    os.makedirs(out_dir, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        pstr = path_str(p)
        array = np.asarray(jax.device_get(leaf))
        if dtype is not None:
            array = array.astype(np.dtype(jnp.bfloat16 if dtype == "bfloat16" else dtype))
        if _TRANSPOSED.search(pstr):
            array = array.T
        tensors[hf_name(pstr)] = np.ascontiguousarray(array)
    if any(a.dtype == jnp.bfloat16 for a in tensors.values()):
        raise ValueError("export_hf: bfloat16 export is not supported; pass dtype='float32'")
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    hf = cfg.to_hf_config()
    if dtype is not None:
        hf["dtype"] = dtype
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    return hf
