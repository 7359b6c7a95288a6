"""scenic ViViT trees (scenic's parameter names) -> our ViViT, by round trip.

The test renames a random tree of ours into scenic's naming, saves it as
scenic does (a Flax msgpack train state, or a flat `.npz`), converts it back
and expects identical logits. The renamed tree must be exactly a golden list
of the names and shapes scenic's modules create (`SCENIC_*` below, written
from scenic/projects/vivit/model.py: `embedding` is a 3D `nn.Conv`, the
encoder blocks are `nn.LayerNorm` + flax `MultiHeadDotProductAttention` +
scenic's `attention_layers.MlpBlock` (two unnamed `nn.Dense`), `posembed_input`
is vit's `AddPositionEmbs`, added after the class token is prepended), so
the round trip cannot agree with itself on names scenic never writes.
"""

import re

import flax
import jax
import numpy as np
import pytest

from vivit_jax import checkpoints
from vivit_jax.convert import UnsupportedCheckpointError, convert_scenic
from vivit_jax.convert import __main__ as convert_cli
from vivit_jax.models import build_model

BASE = dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
            patch_size=8, tubelet_size=2, num_classes=5, activation="gelu_tanh",
            layer_norm_eps=1e-6, pos_embedding="learned")
VIDEO = (2, 8, 32, 32, 3)


def _random_params(config, seed=0):
  """Model and a random tree of its shapes (zero-initialised heads and biases
  would hide swapped names; `model.init` is slow on CPU)."""
  model = build_model(config)
  shapes = flax.linen.unbox(
      jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros(VIDEO, np.float32)))
  rng = np.random.default_rng(seed)
  params = jax.tree_util.tree_map(
      lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32), shapes["params"])
  return model, params


def _golden_block(prefix, hidden=32, heads=4, mlp=64):
  """scenic's `EncoderBlock` params: `{name: shape}`."""
  head_dim = hidden // heads
  out = {"LayerNorm_0/scale": (hidden,), "LayerNorm_0/bias": (hidden,),
         "LayerNorm_1/scale": (hidden,), "LayerNorm_1/bias": (hidden,),
         "MultiHeadDotProductAttention_0/out/kernel": (heads, head_dim, hidden),
         "MultiHeadDotProductAttention_0/out/bias": (hidden,),
         "MlpBlock_0/Dense_0/kernel": (hidden, mlp), "MlpBlock_0/Dense_0/bias": (mlp,),
         "MlpBlock_0/Dense_1/kernel": (mlp, hidden), "MlpBlock_0/Dense_1/bias": (hidden,)}
  for name in ("query", "key", "value"):
    out[f"MultiHeadDotProductAttention_0/{name}/kernel"] = (hidden, heads, head_dim)
    out[f"MultiHeadDotProductAttention_0/{name}/bias"] = (heads, head_dim)
  return {f"{prefix}/{k}": v for k, v in out.items()}


# Model 1, 8 frames of 32 x 32, tubelet 2 x 8 x 8: 4 x 16 = 64 tokens + cls.
SCENIC_SPACETIME_TOKEN = {
    "embedding/kernel": (2, 8, 8, 3, 32), "embedding/bias": (32,),
    "cls": (1, 1, 32),
    "Transformer/posembed_input/pos_embedding": (1, 65, 32),
    **_golden_block("Transformer/encoderblock_0"),
    **_golden_block("Transformer/encoderblock_1"),
    "Transformer/encoder_norm/scale": (32,), "Transformer/encoder_norm/bias": (32,),
    "output_projection/kernel": (32, 5), "output_projection/bias": (5,),
}
# Model 1 with global average pooling: no cls, no position for it.
SCENIC_SPACETIME_GAP = {
    **{k: v for k, v in SCENIC_SPACETIME_TOKEN.items() if k != "cls"},
    "Transformer/posembed_input/pos_embedding": (1, 64, 32),
}
# Model 2 (`SpaceTimeViViT`): 16 spatial tokens + cls per frame, 4 time steps
# + cls, one temporal layer, `representation_size=16`.
SCENIC_FACTORISED_ENCODER = {
    "embedding/kernel": (2, 8, 8, 3, 32), "embedding/bias": (32,),
    "cls_SpatialTransformer": (1, 1, 32),
    "SpatialTransformer/posembed_input/pos_embedding": (1, 17, 32),
    **_golden_block("SpatialTransformer/encoderblock_0"),
    **_golden_block("SpatialTransformer/encoderblock_1"),
    "SpatialTransformer/encoder_norm/scale": (32,),
    "SpatialTransformer/encoder_norm/bias": (32,),
    "cls_TemporalTransformer": (1, 1, 32),
    "TemporalTransformer/posembed_input/pos_embedding": (1, 5, 32),
    **_golden_block("TemporalTransformer/encoderblock_0"),
    "TemporalTransformer/encoder_norm/scale": (32,),
    "TemporalTransformer/encoder_norm/bias": (32,),
    "pre_logits/kernel": (32, 16), "pre_logits/bias": (16,),
    "output_projection/kernel": (16, 5), "output_projection/bias": (5,),
}


def _shapes(flat):
  return {k: tuple(np.shape(v)) for k, v in flat.items()}


def _scenic_block(block):
  out = {}
  for name, value in checkpoints.flatten_params(block).items():
    name = re.sub(r"^norm_attention/", "LayerNorm_0/", name)
    name = re.sub(r"^norm_mlp/", "LayerNorm_1/", name)
    name = re.sub(r"^attention/", "MultiHeadDotProductAttention_0/", name)
    name = re.sub(r"^mlp/fc1/", "MlpBlock_0/Dense_0/", name)
    name = re.sub(r"^mlp/fc2/", "MlpBlock_0/Dense_1/", name)
    out[name] = value
  return out


def to_scenic(params, factorised: bool):
  """Our tree -> a flat dict in scenic's names."""
  flat = {"embedding/kernel": params["embedding"]["projection"]["kernel"],
          "embedding/bias": params["embedding"]["projection"]["bias"]}
  encoders = ([("encoder", "SpatialTransformer", "pos_embedding", "cls_token"),
               ("temporal_encoder", "TemporalTransformer", "temporal_pos_embedding",
                "temporal_cls_token")] if factorised else
              [("encoder", "Transformer", "pos_embedding", "cls_token")])
  for ours, theirs, pos, cls in encoders:
    for block, tree in params[ours].items():
      if block == "norm":
        flat[f"{theirs}/encoder_norm/scale"] = tree["scale"]
        flat[f"{theirs}/encoder_norm/bias"] = tree["bias"]
        continue
      i = int(block.split("_")[1])
      for name, value in _scenic_block(tree).items():
        flat[f"{theirs}/encoderblock_{i}/{name}"] = value
    flat[f"{theirs}/posembed_input/pos_embedding"] = params[pos]["embedding"][None]
    if cls in params:
      flat[f"cls_{theirs}" if factorised else "cls"] = params[cls]
  for ours, theirs in (("head", "output_projection"), ("pre_logits", "pre_logits")):
    if ours in params:
      flat[f"{theirs}/kernel"] = params[ours]["kernel"]
      flat[f"{theirs}/bias"] = params[ours]["bias"]
  return {k: np.asarray(v) for k, v in flat.items()}


def _logits(model, params, seed=3):
  video = np.random.default_rng(seed).standard_normal(VIDEO).astype(np.float32)
  return np.asarray(jax.jit(model.apply)({"params": params}, video))


def test_factorised_encoder_msgpack_train_state_round_trip(tmp_path):
  config = dict(BASE, variant="factorised_encoder", temporal_layers=1, classifier="token",
                representation_size=16)
  model, params = _random_params(config)
  flat = to_scenic(params, factorised=True)
  assert _shapes(flat) == SCENIC_FACTORISED_ENCODER
  state = {"global_step": np.int32(7), "params": checkpoints.unflatten_params(flat),
           "opt_state": {"mu": checkpoints.unflatten_params(flat)}}
  path = tmp_path / "checkpoint_7"
  path.write_bytes(flax.serialization.msgpack_serialize(state))

  conversion = convert_scenic(str(path))  # the grid is read from the two tables.
  assert conversion.config["variant"] == "factorised_encoder"
  assert conversion.config["temporal_layers"] == 1
  assert conversion.config["representation_size"] == 16
  assert conversion.source["num_frames"] == 8
  assert conversion.source["image_size"] == [32, 32]
  np.testing.assert_array_equal(
      _logits(conversion.model, conversion.params), _logits(model, params))


@pytest.mark.parametrize("classifier", ["token", "gap"])
def test_spacetime_npz_round_trip(tmp_path, classifier):
  config = dict(BASE, variant="spatio_temporal", classifier=classifier)
  model, params = _random_params(config, seed=1)
  path = tmp_path / "vivit.npz"
  flat = to_scenic(params, factorised=False)
  assert _shapes(flat) == {"token": SCENIC_SPACETIME_TOKEN,
                           "gap": SCENIC_SPACETIME_GAP}[classifier]
  np.savez(path, **flat)
  conversion = convert_scenic(str(path), num_frames=8)
  assert conversion.config["classifier"] == classifier
  assert conversion.source["image_size"] == [32, 32]
  np.testing.assert_array_equal(
      _logits(conversion.model, conversion.params), _logits(model, params))
  with pytest.raises(ValueError, match="num_frames or image_size"):
    convert_scenic(str(path))
  with pytest.raises(ValueError, match="time steps"):
    convert_scenic(str(path), num_frames=16, image_size=32)


def test_cli_writes_a_loadable_checkpoint(tmp_path, capsys):
  config = dict(BASE, variant="spatio_temporal", classifier="token")
  model, params = _random_params(config, seed=2)
  np.savez(tmp_path / "vivit.npz", **to_scenic(params, factorised=False))
  (tmp_path / "labels.txt").write_text("\n".join("abcde") + "\n")
  out = tmp_path / "ckpt"
  assert convert_cli.main(["--from", "scenic", "--input", str(tmp_path / "vivit.npz"),
                           "--output", str(out), "--image-size", "32",
                           "--labels", str(tmp_path / "labels.txt")]) == 0
  line = capsys.readouterr().out.strip()
  assert "scenic/spatio_temporal -> vivit" in line and "5 labels" in line, line
  stored, restored = checkpoints.load_model_checkpoint(str(out), params)
  assert stored["labels"] == list("abcde") and stored["source"]["num_frames"] == 8
  assert stored["model"]["activation"] == "gelu_tanh"
  for name, value in checkpoints.flatten_params(params).items():
    np.testing.assert_array_equal(checkpoints.flatten_params(restored)[name], value)


def test_unconvertible_trees_name_the_problem(tmp_path):
  _, params = _random_params(dict(BASE, variant="spatio_temporal", classifier="token"))
  flat = to_scenic(params, factorised=False)
  model3 = {re.sub("LayerNorm_0", "LayerNorm_space", k): v for k, v in flat.items()}
  np.savez(tmp_path / "m3.npz", **model3)
  with pytest.raises(UnsupportedCheckpointError, match="Model 3"):
    convert_scenic(str(tmp_path / "m3.npz"), num_frames=8)
  np.savez(tmp_path / "extra.npz", **flat, **{"Transformer/extra/kernel": np.ones(3)})
  with pytest.raises(ValueError, match="Transformer/extra/kernel"):
    convert_scenic(str(tmp_path / "extra.npz"), num_frames=8)


@pytest.mark.parametrize("golden", ["spacetime_token", "spacetime_gap", "factorised_encoder"])
def test_golden_scenic_tree_is_accepted_exactly(tmp_path, golden):
  """A tree of scenic's names and shapes converts into every parameter of our
  model; with a name missing, or one more, it is refused naming that name."""
  tree = {"spacetime_token": SCENIC_SPACETIME_TOKEN, "spacetime_gap": SCENIC_SPACETIME_GAP,
          "factorised_encoder": SCENIC_FACTORISED_ENCODER}[golden]
  rng = np.random.default_rng(5)
  flat = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in tree.items()}
  np.savez(tmp_path / "golden.npz", **flat)
  conversion = convert_scenic(str(tmp_path / "golden.npz"), num_frames=8)
  assert conversion.config["variant"] == ("factorised_encoder" if golden.startswith("fact")
                                          else "spatio_temporal")
  assert conversion.config["classifier"] == ("gap" if golden.endswith("gap") else "token")
  assert conversion.source["image_size"] == [32, 32]
  ours = flax.linen.unbox(jax.eval_shape(conversion.model.init, jax.random.PRNGKey(0),
                                         np.zeros(VIDEO, np.float32)))["params"]
  converted = checkpoints.flatten_params(conversion.params)
  assert _shapes(converted) == {k: tuple(v.shape)
                                for k, v in checkpoints.flatten_params(ours).items()}
  # Every scenic value lands somewhere, unchanged up to a reshape.
  assert sum(v.size for v in converted.values()) == sum(v.size for v in flat.values())
  np.testing.assert_array_equal(conversion.params["head"]["kernel"],
                                flat["output_projection/kernel"])
  logits = _logits(conversion.model, conversion.params)
  assert logits.shape == (VIDEO[0], 5) and np.all(np.isfinite(logits))

  missing = dict(flat)
  del missing["output_projection/bias"]
  np.savez(tmp_path / "missing.npz", **missing)
  with pytest.raises((KeyError, ValueError), match="output_projection/bias"):
    convert_scenic(str(tmp_path / "missing.npz"), num_frames=8)
  prefix = "SpatialTransformer" if golden.startswith("fact") else "Transformer"
  extra = dict(flat, **{f"{prefix}/encoderblock_0/MlpBlock_0/Dense_2/kernel": np.ones((2, 2))})
  np.savez(tmp_path / "extra.npz", **extra)
  with pytest.raises(ValueError, match="Dense_2"):
    convert_scenic(str(tmp_path / "extra.npz"), num_frames=8)
