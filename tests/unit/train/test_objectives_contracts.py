"""Objectives (train/objectives.py) as pure functions on tiny models: modes
and their refusals, the cross-entropy, padding-aware eval means, PRNG
streams and the pretraining loss against the model's own outputs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vivit_jax.models import build_model, masking, videomae
from vivit_jax.train import objectives
from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.specs import ObjectiveSpec

CLIP = (2, 8, 8, 3)
TINY = dict(hidden_size=8, num_layers=1, num_heads=2, mlp_dim=16, patch_size=4,
            tubelet_size=2)


def _config(mode="train", pretrain=False, **train):
  config = default_train_config()
  config.mode = mode
  if pretrain:
    config.model = ml_collections.ConfigDict(dict(
        TINY, name="videomae", decoder_hidden_size=8, decoder_layers=1, decoder_heads=2,
        decoder_mlp_dim=16, mask_ratio=0.5, mask_type="random"))
  else:
    config.model = ml_collections.ConfigDict(dict(TINY, name="vivit", num_classes=3))
  for key, value in train.items():
    setattr(config.train, key, value)
  return config


def _params(model, *inputs, seed=1):
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)["params"])
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape), a.dtype), shapes)


def _video(batch=4, seed=0):
  return np.random.default_rng(seed).standard_normal((batch,) + CLIP).astype(np.float32)


def test_run_mode_maps_every_training_mode_to_train_and_refuses_unknown_ones():
  for mode in objectives.TRAIN_MODES:
    assert objectives.run_mode(ml_collections.ConfigDict({"mode": mode})) == "train"
  assert objectives.run_mode(ml_collections.ConfigDict({"mode": "eval"})) == "eval"
  with pytest.raises(ValueError, match="mode must be one of"):
    objectives.run_mode(ml_collections.ConfigDict({"mode": "fit"}))


def test_check_mode_pairs_modes_with_objectives():
  cls_config, mae_config = _config(), _config(pretrain=True)
  assert objectives.check_mode(ObjectiveSpec.from_config(cls_config),
                               cls_config.model) == "classification"
  assert objectives.check_mode(ObjectiveSpec.from_config(_config("finetune")),
                               cls_config.model) == "classification"
  assert objectives.check_mode(ObjectiveSpec.from_config(_config("distill")),
                               cls_config.model) == "classification"
  assert objectives.check_mode(ObjectiveSpec.from_config(_config("pretrain", True)),
                               mae_config.model) == "pretrain"
  assert objectives.check_mode(ObjectiveSpec.from_config(_config("eval", True)),
                               mae_config.model) == "pretrain"
  with pytest.raises(ValueError, match="mode='pretrain' needs a pretraining model.*'vivit'"):
    objectives.check_mode(ObjectiveSpec.from_config(_config("pretrain")), cls_config.model)
  with pytest.raises(ValueError, match="mode='finetune' needs a classification model"):
    objectives.check_mode(ObjectiveSpec.from_config(_config("finetune", True)), mae_config.model)
  with pytest.raises(ValueError, match="mode='distill' needs a classification model"):
    objectives.check_mode(ObjectiveSpec.from_config(_config("distill", True)), mae_config.model)
  model = build_model(mae_config.model)
  for key in ("mixup_alpha", "cutmix_alpha"):
    with pytest.raises(ValueError, match="apply to classification"):
      objectives.check_mode(ObjectiveSpec.from_config(_config("pretrain", True, **{key: 0.5})),
                            model)
  with pytest.raises(ValueError, match="got MaskedVideoAutoencoder"):
    objectives.check_mode(ObjectiveSpec.from_config(_config("finetune", True)), model)


def test_pixel_normalisation_reads_the_data_keys_or_none():
  config = _config()
  config.data.mean, config.data.std = [0.5, 0.25, 0.0], [2, 4, 1]
  assert objectives.pixel_normalisation(ObjectiveSpec.from_config(config)) == ((0.5, 0.25, 0.0),
                                                                               (2.0, 4.0, 1.0))
  config.data.mean = config.data.std = None
  assert objectives.pixel_normalisation(ObjectiveSpec.from_config(config)) == (None, None)


def test_softmax_cross_entropy_is_minus_the_target_weighted_log_softmax():
  logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
  targets = np.array([[0.8, 0.1, 0.1], [0.0, 0.0, 1.0]], np.float32)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(objectives.softmax_cross_entropy(logits, targets),
                             -(targets * logp).sum(-1), rtol=1e-6)


def test_classification_loss_uses_smoothed_targets_and_the_dropout_stream():
  config = _config(label_smoothing=0.3)
  model = build_model(config.model)
  video, labels = _video(), np.array([0, 1, 2, 1], np.int32)
  params = _params(model, video)
  loss_fn = jax.jit(objectives.make_loss_fn(ObjectiveSpec.from_config(config), model))
  rng = jax.random.PRNGKey(7)
  loss, metrics = loss_fn(params, {"video": video, "label": labels}, rng)
  logits = model.apply({"params": params}, video, train=True,
                       rngs={"dropout": jax.random.fold_in(rng, objectives.DROPOUT)})
  targets = jax.nn.one_hot(labels, 3) * 0.7 + 0.1
  np.testing.assert_allclose(loss, objectives.softmax_cross_entropy(logits, targets).mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"],
                             np.mean(np.argmax(logits, -1) == labels), rtol=1e-6)


def test_classification_eval_means_over_real_examples_only():
  config = _config()
  model = build_model(config.model)
  video, labels = _video(), np.array([0, 1, 2, 1], np.int32)
  params = _params(model, video)
  eval_fn = jax.jit(objectives.make_eval_fn(ObjectiveSpec.from_config(config), model))
  mask = np.array([1, 1, 0, 1], np.float32)
  out = eval_fn(params, {"video": video, "label": labels, "mask": mask}, None)
  logits = np.asarray(model.apply({"params": params}, video))
  np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-6)
  ce = np.asarray(objectives.softmax_cross_entropy(logits, jax.nn.one_hot(labels, 3)))
  np.testing.assert_allclose(out["loss"], (ce * mask).sum() / 3, rtol=1e-5)
  correct = (np.argmax(logits, -1) == labels).astype(np.float32)
  np.testing.assert_allclose(out["accuracy"], (correct * mask).sum() / 3, rtol=1e-6)
  assert float(out["num_examples"]) == 3.0
  unmasked = eval_fn(params, {"video": video, "label": labels}, None)
  np.testing.assert_allclose(unmasked["loss"], ce.mean(), rtol=1e-5)
  assert float(unmasked["num_examples"]) == 4.0
  empty = eval_fn(params, {"video": video, "label": labels, "mask": np.zeros(4)}, None)
  assert float(empty["loss"]) == 0.0 and float(empty["num_examples"]) == 0.0


def test_pretrain_loss_is_the_hidden_token_error_under_the_mask_stream():
  config = _config("pretrain", True, norm_pix_loss=True, reconstruction_loss="l1")
  config.data.mean, config.data.std = [0.4, 0.5, 0.6], [0.2, 0.3, 0.4]
  model = build_model(config.model)
  video = _video(2)
  rng = jax.random.PRNGKey(3)
  mask = objectives.draw_mask(model, jax.random.fold_in(rng, objectives.MASK), video.shape)
  assert mask.shape == (2, 4) and np.all(np.asarray(mask).sum(1) == 2)  # grid (1, 2, 2)
  params = _params(model, video, mask)
  loss, _ = jax.jit(objectives.make_loss_fn(ObjectiveSpec.from_config(config), model))(params,
                                                                                       {"video": video}, rng)
  out = model.apply({"params": params}, video, mask, train=True,
                    rngs={"dropout": jax.random.fold_in(rng, objectives.DROPOUT)})
  targets = videomae.reconstruction_targets(video, 4, 2, True, (0.4, 0.5, 0.6),
                                            (0.2, 0.3, 0.4))
  expected = videomae.reconstruction_loss(out["predictions"], targets, out["masked_indices"],
                                          "l1")
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_pretrain_eval_is_padding_aware_and_returns_the_reconstruction_and_mask():
  config = _config("pretrain", True, norm_pix_loss=False)
  config.data.mean = config.data.std = None
  model = build_model(config.model)
  video = _video(2)
  rng = jax.random.PRNGKey(4)
  mask = objectives.draw_mask(model, rng, video.shape)
  params = _params(model, video, mask)
  eval_fn = jax.jit(objectives.make_eval_fn(ObjectiveSpec.from_config(config), model,
                                            return_reconstruction=True))
  out = eval_fn(params, {"video": video, "mask": np.array([0.0, 1.0])}, rng)
  np.testing.assert_array_equal(out["mask"], mask)
  pred = model.apply({"params": params}, video, mask)
  targets = videomae.patchify(video, 4, 2)
  errors = videomae.reconstruction_errors(pred["predictions"], targets, pred["masked_indices"])
  np.testing.assert_allclose(out["loss"], errors[1], rtol=1e-5)
  assert float(out["num_examples"]) == 1.0
  assert out["reconstruction"].shape == video.shape
  visible = np.asarray(masking.gather_tokens(
      videomae.patchify(out["reconstruction"], 4, 2), pred["visible_indices"]))
  np.testing.assert_allclose(visible, np.asarray(masking.gather_tokens(
      targets, pred["visible_indices"])), rtol=1e-6)
  assert "reconstruction" not in jax.jit(objectives.make_eval_fn(ObjectiveSpec.from_config(config),
                                                                 model))(
      params, {"video": video}, rng)


def test_a_model_with_class_splits_trains_and_evaluates_per_head():
  config = _config()
  config.model = ml_collections.ConfigDict(dict(TINY, name="vivit", num_classes=5,
                                                class_splits=(2, 3), classifier="gap"))
  model = build_model(config.model)
  video, labels = _video(), np.array([0, 4, 5, 3], np.int32)  # label = y0 * 3 + y1
  params = _params(model, video)
  _, metrics = jax.jit(objectives.make_loss_fn(ObjectiveSpec.from_config(config), model))(
      params, {"video": video, "label": labels}, jax.random.PRNGKey(0))
  assert {"accuracy", "head_0_accuracy", "head_1_accuracy"} <= set(metrics)
  out = jax.jit(objectives.make_eval_fn(ObjectiveSpec.from_config(config), model))(
      params, {"video": video, "label": labels}, None)
  log_probs = np.asarray(out["logits"])  # each head's log-softmax, side by side
  np.testing.assert_allclose(np.exp(log_probs[:, :2]).sum(1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.exp(log_probs[:, 2:]).sum(1), 1.0, rtol=1e-5)
