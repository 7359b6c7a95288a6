"""Flax parameter trees written by other JAX projects, read as flat `a/b/c` names.

  read_flat_tree   a `.npz` of flattened names (google-research/
                   vision_transformer, big_vision), a Flax msgpack file
                   (`flax.serialization.to_bytes`, or a
                   `flax.training.checkpoints` `checkpoint_N` file) or an Orbax
                   checkpoint folder -> `{"a/b/c": float32 ndarray}`, with the
                   parameters' root found under train-state wrappers
                   (`params/`, `optimizer/target/`, ...) and scanned
                   `encoderblock/` stacks split into `encoderblock_{i}/`.
  encoder          `encoderblock_{i}` / `encoder_norm` of a flax ViT encoder
                   -> our `Encoder` tree.

A flax ViT block is two LayerNorms, one `MultiHeadDotProductAttention` and
one `MlpBlock` (`Dense_0`, `Dense_1`), numbered per project
(vision_transformer: LayerNorm_0, MultiHeadDotProductAttention_1,
LayerNorm_2, MlpBlock_3; scenic and big_vision: LayerNorm_0,
MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0); the first norm is
the attention's. Flax attention kernels already have our layouts: q/k/v
`(D, H, hd)`, biases `(H, hd)`, out `(H, hd, D)`; Dense kernels `(in, out)`.
"""

import os
import re
from typing import Any, Dict, List

import numpy as np

from vivit_jax import checkpoints
from vivit_jax.convert.hf_config import UnsupportedCheckpointError
from vivit_jax.convert.hf_state_dict import TensorReader

# Where train states keep the parameters, tried before any other prefix.
ROOTS = ("", "params/", "params/params/", "optimizer/target/", "target/",
         "optimizer/target/params/", "train_state/params/")
# Names of optimiser statistics: a root under one of them is never the params.
_OPTIMIZER_PARTS = ("opt_state", "optimizer/state", "/mu/", "/nu/", "ema", "state/")
# A name every supported tree has (the patch embedding's kernel).
ROOT_MARKER = "embedding/kernel"


def _flatten(tree: Any) -> Dict[str, np.ndarray]:
  return {name: np.asarray(value) for name, value in checkpoints.flatten_params(tree).items()}


def _read_raw(path: str) -> Dict[str, np.ndarray]:
  if os.path.isdir(path):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    return _flatten(ocp.PyTreeCheckpointer().restore(os.path.abspath(path)))
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} does not exist")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as data:
      return {name: data[name] for name in data.files}
  from flax import serialization  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    payload = f.read()
  try:
    tree = serialization.msgpack_restore(payload)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{path} is neither a .npz file, an Orbax folder nor a Flax msgpack "
                     f"file ({type(e).__name__}: {e})") from e
  return _flatten(tree)


def find_root(names: List[str], path: str) -> str:
  """The prefix under which the model parameters live (see ROOTS)."""
  names = set(names)
  for root in ROOTS:
    if root + ROOT_MARKER in names:
      return root
  found = sorted((n[: -len(ROOT_MARKER)] for n in names if n.endswith(ROOT_MARKER)
                  and not any(p in "/" + n for p in _OPTIMIZER_PARTS)), key=len)
  if not found:
    raise ValueError(f"{path}: no {ROOT_MARKER!r} under any prefix, so no ViT/ViViT "
                     f"parameters; names include {sorted(names)[:12]}")
  return found[0]


def unstack_scanned(flat: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """`X/encoderblock/...` arrays stacked over layers -> `X/encoderblock_{i}/...`."""
  out = {}
  for name, value in flat.items():
    match = re.match(r"^(.*?)encoderblock/(.*)$", name)
    if not match:
      out[name] = value
      continue
    for i in range(value.shape[0]):
      out[f"{match.group(1)}encoderblock_{i}/{match.group(2)}"] = value[i]
  return out


def read_flat_tree(path: str) -> Dict[str, np.ndarray]:
  """The model parameters at `path` as `{"a/b/c": float32 array}` (see above)."""
  raw = _read_raw(path)
  root = find_root(list(raw), path)
  flat = {name[len(root):]: np.asarray(value, np.float32) for name, value in raw.items()
          if name.startswith(root)}
  return unstack_scanned(flat)


def _children(reader: TensorReader, prefix: str) -> List[str]:
  return sorted({n[len(prefix) + 1:].split("/")[0] for n in reader.names()
                 if n.startswith(prefix + "/")})


def _number(name: str) -> int:
  match = re.search(r"_(\d+)$", name)
  return int(match.group(1)) if match else -1


def _norm(reader: TensorReader, prefix: str, dim: int):
  return {"scale": reader.take(f"{prefix}/scale", (dim,)),
          "bias": reader.take(f"{prefix}/bias", (dim,))}


def dense(reader: TensorReader, prefix: str, shape=None):
  kernel = reader.take(f"{prefix}/kernel", shape)
  return {"kernel": kernel, "bias": reader.take(f"{prefix}/bias", kernel.shape[-1:])}


def attention_heads(reader: TensorReader, block_prefix: str) -> int:
  """Heads of a flax block: the middle axis of its query kernel `(D, H, hd)`."""
  attn = [c for c in _children(reader, block_prefix)
          if c.startswith("MultiHeadDotProductAttention")]
  if not attn:
    raise ValueError(f"{block_prefix} has no MultiHeadDotProductAttention")
  name = f"{block_prefix}/{attn[0]}/query/kernel"
  if not reader.has(name) or np.ndim(reader.take(name)) != 3:
    raise UnsupportedCheckpointError(f"{name}: expected a (D, heads, head_dim) kernel")
  return int(reader.take(name).shape[1])


def encoder_block(reader: TensorReader, prefix: str, dim: int) -> Dict[str, Any]:
  """One flax ViT block at `prefix` -> our joint `block_XX` tree."""
  children = _children(reader, prefix)
  norms = sorted((c for c in children if c.startswith("LayerNorm")), key=_number)
  attn = [c for c in children if c.startswith("MultiHeadDotProductAttention")]
  mlp = [c for c in children if c.startswith("MlpBlock")]
  extra = sorted(set(children) - set(norms) - set(attn) - set(mlp))
  if len(norms) != 2 or len(attn) != 1 or len(mlp) != 1 or extra:
    raise UnsupportedCheckpointError(
        f"{prefix} has children {children}; a ViT block has two LayerNorm_*, one "
        "MultiHeadDotProductAttention_* and one MlpBlock_*")
  a = f"{prefix}/{attn[0]}"
  heads = attention_heads(reader, prefix)
  if dim % heads:
    raise ValueError(f"{a}: width {dim} is not divisible by {heads} heads")
  hd = dim // heads
  qkv = {}
  for part in ("query", "key", "value"):
    qkv[part] = {"kernel": reader.take(f"{a}/{part}/kernel", (dim, heads, hd))}
    if reader.has(f"{a}/{part}/bias"):
      qkv[part]["bias"] = reader.take(f"{a}/{part}/bias", (heads, hd))
  denses = sorted(_children(reader, f"{prefix}/{mlp[0]}"), key=_number)
  if len(denses) != 2:
    raise UnsupportedCheckpointError(f"{prefix}/{mlp[0]} has {denses}, expected two Dense_*")
  fc1 = dense(reader, f"{prefix}/{mlp[0]}/{denses[0]}")
  return {
      "norm_attention": _norm(reader, f"{prefix}/{norms[0]}", dim),
      "attention": {**qkv, "out": dense(reader, f"{a}/out", (heads, hd, dim))},
      "norm_mlp": _norm(reader, f"{prefix}/{norms[1]}", dim),
      "mlp": {"fc1": fc1,
              "fc2": dense(reader, f"{prefix}/{mlp[0]}/{denses[1]}",
                            (fc1["kernel"].shape[1], dim))},
  }


def num_blocks(reader: TensorReader, prefix: str) -> int:
  """Blocks `{prefix}/encoderblock_{i}`, checked to be numbered 0..n-1."""
  found = {_number(c) for c in _children(reader, prefix) if c.startswith("encoderblock_")}
  if not found or found != set(range(len(found))):
    raise ValueError(f"{prefix}: encoder blocks numbered {sorted(found)}, expected 0..n-1")
  return len(found)


def encoder(reader: TensorReader, prefix: str, dim: int) -> Dict[str, Any]:
  """A flax ViT encoder (`{prefix}/encoderblock_{i}`, `{prefix}/encoder_norm`)
  -> our `Encoder` tree (`block_{i:02d}`, `norm`)."""
  out = {f"block_{i:02d}": encoder_block(reader, f"{prefix}/encoderblock_{i}", dim)
         for i in range(num_blocks(reader, prefix))}
  out["norm"] = _norm(reader, f"{prefix}/encoder_norm", dim)
  return out


def mlp_dim(reader: TensorReader, prefix: str) -> int:
  """Hidden width of the MLP of `{prefix}/encoderblock_0`."""
  block = f"{prefix}/encoderblock_0"
  mlp = [c for c in _children(reader, block) if c.startswith("MlpBlock")]
  if not mlp:
    raise UnsupportedCheckpointError(f"{block} has no MlpBlock: {_children(reader, block)}")
  denses = sorted(_children(reader, f"{block}/{mlp[0]}"), key=_number)
  return int(reader.take(f"{block}/{mlp[0]}/{denses[0]}/kernel").shape[1])


def has_qkv_bias(reader: TensorReader, prefix: str) -> bool:
  block = f"{prefix}/encoderblock_0"
  attn = [c for c in _children(reader, block) if c.startswith("MultiHeadDotProductAttention")]
  return bool(attn) and reader.has(f"{block}/{attn[0]}/query/bias")
