"""ViViT with several heads (Epic-Kitchens verb + noun): logits layout, loss,
action accuracy (every head right) and video-level metrics."""

import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vivit_jax.models import build_model
from vivit_jax.models.vivit import split_logits
from vivit_jax.train import experiment, multihead, objectives
from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.specs import ObjectiveSpec
from support import REPO

SPLITS = (3, 4)  # "verbs", "nouns"
CLIP = (2, 16, 16, 3)
ROOT = REPO


def tiny(**kw):
  return build_model(dict(name="vivit", hidden_size=16, num_layers=1, num_heads=2, mlp_dim=32,
                          num_classes=sum(SPLITS), class_splits=SPLITS, classifier="gap",
                          **kw))


def config_for(model_kwargs, **train):
  config = default_train_config()
  config.mode = "train"
  config.model = ml_collections.ConfigDict(model_kwargs)
  for key, value in train.items():
    config.train[key] = value
  return config


def params_with_head_bias(model, bias):
  """Params whose logits are `bias` for every clip (zero head kernel)."""
  params = flax.core.unfreeze(model.init(jax.random.key(0), jnp.zeros((1,) + CLIP))["params"])
  params = flax.linen.unbox(params)
  params["head"]["kernel"] = jnp.zeros_like(params["head"]["kernel"])
  params["head"]["bias"] = jnp.asarray(bias, jnp.float32)
  return params


def test_heads_sit_side_by_side_in_one_logits_row():
  model = tiny()
  video = jax.random.normal(jax.random.key(1), (5,) + CLIP)
  params = model.init(jax.random.key(0), video)
  logits = model.apply(params, video)
  assert logits.shape == (5, 7)
  verb, noun = split_logits(logits, SPLITS)
  assert verb.shape == (5, 3) and noun.shape == (5, 4)
  np.testing.assert_array_equal(np.concatenate([verb, noun], -1), logits)


def test_class_splits_must_sum_to_num_classes():
  model = build_model(dict(name="vivit", hidden_size=16, num_layers=1, num_heads=2,
                           mlp_dim=32, num_classes=8, class_splits=SPLITS))
  with pytest.raises(ValueError, match="class_splits.*sum to model.num_classes=8"):
    model.init(jax.random.key(0), jnp.zeros((1,) + CLIP))


def test_loss_is_the_sum_of_each_heads_cross_entropy():
  model = tiny()
  bias = np.array([2.0, -1.0, 0.5, 0.3, 1.5, -2.0, 0.0])
  params = params_with_head_bias(model, bias)
  labels = multihead.encode_labels([np.array([0, 2]), np.array([1, 3])], SPLITS)
  batch = {"video": jnp.zeros((2,) + CLIP), "label": jnp.asarray(labels, jnp.int32)}
  loss_fn = objectives.make_loss_fn(ObjectiveSpec.from_config(config_for({})), model)
  loss, metrics = loss_fn(params, batch, jax.random.key(0))
  lv, ln = jax.nn.log_softmax(bias[:3]), jax.nn.log_softmax(bias[3:])
  want = np.mean([-(lv[0] + ln[1]), -(lv[2] + ln[3])])
  assert float(loss) == pytest.approx(float(want), rel=1e-5)
  assert set(metrics) == {"accuracy", "head_0_accuracy", "head_1_accuracy"}
  # argmax verb 0, noun 1: example 0 has both right, example 1 neither.
  assert float(metrics["accuracy"]) == 0.5 and float(metrics["head_0_accuracy"]) == 0.5


def test_action_accuracy_needs_every_head_right():
  model = tiny()
  # Every clip predicts verb 1 and noun 2.
  params = params_with_head_bias(model, [0, 5, 0, 0, 0, 5, 0])
  verbs, nouns = np.array([1, 1, 0, 1]), np.array([2, 0, 2, 2])
  labels = multihead.encode_labels([verbs, nouns], SPLITS)
  batch = {"video": jnp.zeros((4,) + CLIP), "label": jnp.asarray(labels, jnp.int32),
           "mask": jnp.array([1, 1, 1, 0])}  # the 4th is padding
  eval_fn = objectives.make_eval_fn(ObjectiveSpec.from_config(config_for({})), model)
  out = eval_fn(params, batch, None)
  assert set(out) == {"loss", "accuracy", "num_examples", "logits"}
  assert float(out["num_examples"]) == 3
  assert float(out["accuracy"]) == pytest.approx(1 / 3)
  # The eval logits are per-head log-probabilities: each head's exp sums to 1.
  probs = np.exp(np.asarray(out["logits"]))
  np.testing.assert_allclose(probs[:, :3].sum(-1), 1, rtol=1e-5)
  np.testing.assert_allclose(probs[:, 3:].sum(-1), 1, rtol=1e-5)


def test_video_metrics_average_views_per_head():
  # Two videos; per-head probabilities already averaged over views.
  scores = np.array([[0.1, 0.8, 0.1, 0.7, 0.1, 0.1, 0.1],
                     [0.6, 0.3, 0.1, 0.1, 0.1, 0.1, 0.7]])
  labels = multihead.encode_labels([np.array([1, 0]), np.array([0, 2])], SPLITS)
  out = multihead.video_metrics(scores, labels, SPLITS)
  assert out == {"eval/top1": 0.5, "eval/head_0_top1": 1.0, "eval/head_1_top1": 0.5}


def test_a_label_space_that_is_not_the_heads_product_fails_by_name():
  config = experiment.load_config_file(os.path.join(ROOT, "configs", "vivit.py:L_fe_epic"))
  experiment.validate(config)
  with config.unlocked():
    config.data.num_classes = 397
  with pytest.raises(ValueError, match=r"data.num_classes=397 must be the product"):
    experiment.validate(config)
