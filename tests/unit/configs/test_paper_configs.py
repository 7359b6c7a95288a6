"""The paper rows of configs/vivit.py and configs/videomae.py.

Every row: its model's parameters and GFLOPs per view (built abstractly,
no weights in memory) lie within 2% of the paper's figures where the paper
gives them; its config loads, validates and resolves its data section; a
scaled-down copy (same variant, optimiser, losses and regularisers; tiny
width and clip) takes one training step on a generated clip.
"""

import importlib.util
import math
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import datasets as data_fixtures
from vivit_jax import checkpoints
from vivit_jax.data.config import resolve_data_config
from vivit_jax.models import build_model, flops
from vivit_jax.checkpoints import init_from
from vivit_jax.train import experiment, multihead
from vivit_jax.train.distributed import make_global_batch
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.steps import init_train_state, make_train_step
from vivit_jax.train.specs import StepSpec
from support import REPO

ROOT = REPO
FILES = ("vivit", "videomae")
FAST = {"xla_backend_optimization_level": 0}
TINY_CLIP = (4, 32, 32, 3)  # (T, H, W, C): 2 x 2 x 2 tubelets of 16 x 16 x 2
TINY_MODEL = dict(hidden_size=16, num_heads=2, mlp_dim=32, num_layers=1)
TINY_DECODER = dict(decoder_hidden_size=16, decoder_heads=2, decoder_mlp_dim=32,
                    decoder_layers=1)


def _module(name):
  spec = importlib.util.spec_from_file_location(f"paper_config_{name}",
                                                os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


MODULES = {name: _module(name) for name in FILES}
ALL_ROWS = [(f, r) for f in FILES for r in MODULES[f].ROWS]
PAPER_ROWS = [(f, r) for f, r in ALL_ROWS
              if "params_m" in MODULES[f].ROWS[r].get("paper", {})]


def load(file, row, overrides=None):
  return experiment.load_config_file(os.path.join(ROOT, "configs", f"{file}.py:{row}"),
                                     overrides)


def clip_of(config):
  d = config.data
  return (d.num_frames, d.image_size, d.image_size, 3)


@pytest.mark.parametrize("file,row", PAPER_ROWS, ids=[f"{f}:{r}" for f, r in PAPER_ROWS])
def test_row_params_and_gflops_per_view_match_the_paper(file, row):
  config = load(file, row)
  paper = MODULES[file].ROWS[row]["paper"]
  summary = flops.summary(config.model.to_dict(), clip_of(config))
  assert summary["params_m"] == pytest.approx(paper["params_m"], rel=0.02)
  assert summary["gmacs"] == pytest.approx(paper["gflops"], rel=0.02)


def test_every_headline_row_of_both_papers_has_a_config():
  assert set(MODULES["vivit"].ROWS) == {
      "B_k400", "B_fe_k400", "B_fsa_k400", "B_fdp_k400", "L_fe_k400", "L_fe_k600",
      "L_fe_ssv2", "L_fe_epic", "L_fe_mit"}
  videomae = MODULES["videomae"].ROWS
  for size in "SBLH":
    assert videomae[f"{size}_ft_k400"]["pretrain"] == f"{size}_pt_k400"
  assert videomae["B_ft_ssv2"]["pretrain"] == "B_pt_ssv2"
  expected = {"S_ft_k400": 79.0, "B_ft_k400": 81.5, "L_ft_k400": 85.2, "H_ft_k400": 86.6,
              "B_ft_ssv2": 70.8}
  assert {r: videomae[r]["paper"]["value"] for r in expected} == expected


@pytest.mark.parametrize("file,row", ALL_ROWS, ids=[f"{f}:{r}" for f, r in ALL_ROWS])
def test_row_config_loads_validates_and_resolves(file, row):
  config = load(file, row)
  experiment.validate(config)
  data = resolve_data_config(config.data)
  build_model(config.model)  # unknown or invalid model keys fail here
  assert config.train.num_steps > config.optimizer.warmup_steps > 0
  spec = MODULES[file].ROWS[row]
  doc = MODULES[file].__doc__
  assert re.search(rf"^{row}\s", doc, re.M), f"{row} missing from the docstring table"
  if "paper" in spec:
    assert f"{spec['paper']['value']:.1f}" in doc
  if file == "videomae" and spec["stage"] == "finetune":
    videos = config.train.batch_size // data.clips_per_video
    assert videos == spec["videos"]
    assert config.optimizer.learning_rate == pytest.approx(spec["base_lr"] * videos / 256)
  with pytest.raises(KeyError):
    load(file, row, {"train.no_such_key": 1})


def _docstring_table(file):
  """{row: its whitespace-split columns} from the module docstring's table."""
  rows = MODULES[file].ROWS
  return {line.split()[0]: line.split() for line in MODULES[file].__doc__.splitlines()
          if line.split() and line.split()[0] in rows}


def test_docstring_tables_agree_with_the_configs():
  table = _docstring_table("vivit")
  assert set(table) == set(MODULES["vivit"].ROWS)
  for row, columns in table.items():
    config = load("vivit", row)
    epochs, lr, views = columns[-6:-3] if columns[-1] == "-" else columns[-7:-4]
    assert int(epochs) * (MODULES["vivit"].DATASETS[MODULES["vivit"].ROWS[row]["data"]]
                          ["train_videos"] // 64) == config.train.num_steps
    assert float(lr) == config.optimizer.learning_rate
    assert views == f"{config.data.eval_temporal_views}x{config.data.eval_spatial_views}"
  table = _docstring_table("videomae")
  assert set(table) == set(MODULES["videomae"].ROWS)
  for row, columns in table.items():
    spec = MODULES["videomae"].ROWS[row]
    assert int(columns[4]) == spec["epochs"] and int(columns[5]) == spec["videos"]


@pytest.mark.parametrize("file", FILES)
def test_a_file_without_a_row_names_the_rows(file):
  with pytest.raises(ValueError, match=r"needs a row.*B_"):
    MODULES[file].get_config()


def test_recipes_follow_the_papers():
  vivit = {r: load("vivit", r) for r in ("B_k400", "L_fe_ssv2", "L_fe_epic")}
  for config in vivit.values():
    assert config.optimizer.name == "sgd" and config.optimizer.momentum == 0.9
    assert config.train.batch_size == 64
  assert not vivit["L_fe_ssv2"].data.flip and vivit["B_k400"].data.flip
  assert vivit["L_fe_ssv2"].optimizer.learning_rate == 0.5
  assert vivit["L_fe_ssv2"].train.num_steps == 35 * (168_913 // 64)
  assert vivit["L_fe_epic"].data.num_classes == 97 * 300
  pt, ft = load("videomae", "B_pt_k400"), load("videomae", "B_ft_ssv2")
  assert (pt.optimizer.b1, pt.optimizer.b2) == (0.9, 0.95)
  assert pt.train.batch_size == 2048 and pt.optimizer.learning_rate == pytest.approx(1.2e-3)
  assert pt.optimizer.warmup_steps == 40 * (240_000 // 2048)
  assert ft.data.sampling == "segment" and not ft.data.flip
  assert (ft.data.eval_temporal_views, ft.data.eval_spatial_views) == (2, 3)
  assert ft.optimizer.layer_decay == 0.75
  assert (ft.train.mixup_alpha, ft.train.cutmix_alpha) == (0.8, 1.0)


def tiny_copy(file, row):
  """The row's config at tiny width on a (4, 32, 32, 3) clip, from scratch."""
  config = load(file, row)
  model = dict(TINY_MODEL, dtype="float32")
  if config.model.name == "videomae":
    model.update(TINY_DECODER)
  elif config.model.variant == "factorised_encoder":
    model["temporal_layers"] = 1
  overrides = {f"model.{k}": v for k, v in model.items()}
  overrides.update({"data.num_frames": TINY_CLIP[0], "data.image_size": TINY_CLIP[1],
                    "init_from.kind": "", "init_from.path": "",
                    "train.num_steps": 2, "optimizer.warmup_steps": 0})
  with config.unlocked():
    config = experiment.apply_overrides(config, overrides)
  return config


def generated_batch(config, batch_size, seed):
  rng = np.random.RandomState(seed)
  video = rng.randn(batch_size, *TINY_CLIP).astype(np.float32)
  labels = rng.randint(0, config.data.num_classes, batch_size).astype(np.int32)
  return {"video": video, "label": labels}


def _step_key(config):
  """Rows whose tiny steps differ only in learning rates or batch share one step.

  (Tiny copies of e.g. ViViT-B and -L factorised encoders are one model.)
  """
  c = config.to_dict()
  model = {k: v for k, v in c["model"].items() if k != "size"}
  optimizer = {k: v for k, v in c["optimizer"].items()
               if k not in ("learning_rate", "end_learning_rate")}
  train = {k: v for k, v in c["train"].items() if k != "batch_size"}  # we feed 4 clips
  return repr((c["mode"], model, optimizer, train))


@pytest.fixture(scope="module")
def one_step_results():
  """{(file, row): (loss, is_finite, grad_norm, params changed)}, one step per row."""
  results, compiled = {}, {}
  for file, row in ALL_ROWS:
    config = tiny_copy(file, row)
    experiment.validate(config)
    key = _step_key(config)
    if key not in compiled:
      model = build_model(config.model)
      mesh = create_mesh(config.mesh)
      state, shardings = init_train_state(StepSpec.from_config(config), model, mesh, 0, TINY_CLIP,
                                          compiler_options=FAST)
      before = jax.tree_util.tree_map(np.asarray, state.params)
      step = make_train_step(StepSpec.from_config(config), model, mesh, shardings,
                             compiler_options=FAST)
      state, metrics = step(state, make_global_batch(generated_batch(config, 4, 0), mesh))
      moved = any(not np.allclose(a, b) for a, b in zip(
          jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(state.params)))
      compiled[key] = (float(metrics["loss"]), bool(metrics["is_finite"]),
                       float(metrics["grad_norm"]), moved)
    results[(file, row)] = compiled[key]
  return results


@pytest.mark.slow
@pytest.mark.parametrize("file,row", ALL_ROWS, ids=[f"{f}:{r}" for f, r in ALL_ROWS])
def test_scaled_down_row_takes_one_training_step(one_step_results, file, row):
  loss, finite, grad_norm, moved = one_step_results[(file, row)]
  assert finite and math.isfinite(loss) and loss > 0
  assert grad_norm > 0 and moved


def test_epic_kitchens_labels_combine_verb_and_noun():
  splits = (97, 300)
  verb, noun = np.array([0, 96, 5]), np.array([299, 0, 7])
  label = multihead.encode_labels([verb, noun], splits)
  np.testing.assert_array_equal(label, verb * 300 + noun)
  decoded = multihead.decode_labels(label, splits)
  np.testing.assert_array_equal(decoded[0], verb)
  np.testing.assert_array_equal(decoded[1], noun)


def test_reproduce_doc_lists_every_row_with_an_empty_reproduced_column():
  with open(os.path.join(ROOT, "docs", "reproduce.md")) as f:
    lines = [line for line in f if line.startswith("| `configs/")]
  by_config = {line.split("`")[1]: line for line in lines}
  assert set(by_config) == {f"configs/{f}.py:{r}" for f, r in ALL_ROWS}
  for line in by_config.values():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    assert cells[-1] == "", f"'reproduced' is filled before a measurement: {line}"


def test_joint_position_models_start_from_a_2d_vit_checkpoint(tmp_path):
  """Models 3 and 4 rows (`factorised_positions="joint"`): the image ViT's
  position table, repeated over the time steps, fills the joint table."""
  vit_config = dict(name="vivit", num_classes=0, tubelet_size=1, **TINY_MODEL)
  vit = build_model(vit_config)
  vit_params = nn.unbox(vit.init(jax.random.key(3), jnp.zeros((1, 1, 32, 32, 3)))["params"])
  checkpoints.save_model_checkpoint(str(tmp_path / "vit"), vit_params, {"model": vit_config})
  for row in ("B_fsa_k400", "B_fdp_k400"):
    config = tiny_copy("vivit", row)
    model = build_model(config.model)
    fresh = nn.unbox(model.init(jax.random.key(0), jnp.zeros((1,) + TINY_CLIP))["params"])
    config.init_from.kind, config.init_from.path = "image_vit", str(tmp_path / "vit")
    params = init_from.initial_params(config.init_from, fresh, (2, 2))
    table = np.asarray(jax.device_get(params["pos_embedding"]["embedding"]))
    spatial = np.asarray(vit_params["pos_embedding"]["embedding"])[1:]  # drop the CLS slot
    np.testing.assert_allclose(table, np.tile(spatial, (2, 1)), rtol=1e-6)
    assert "temporal_pos_embedding" not in params


@pytest.fixture(scope="module")
def tiny_tfrecords(tmp_path_factory):
  """Three 40-frame 48 x 64 videos as DMVR TFRecords, labels 0..2 (train = eval)."""
  prefix = str(tmp_path_factory.mktemp("paper_rows") / "clips")
  videos = [(data_fixtures.index_video(40), label) for label in (0, 1, 2)]
  return data_fixtures.write_dmvr_tfrecords(prefix, videos, num_shards=1)


def _tiny_data(config, files):
  """The row's data section at a 4 x 32 x 32 clip, sampling and augmentation kept."""
  d = config.data.to_dict()
  d.update(train_files=files, eval_files=files, num_frames=4, image_size=32,
           resize_short_side=40, num_parallel_calls=1, prefetch_batches=1, probe_videos=1,
           shuffle_buffer=0)
  if d["eval_resize_short_side"]:
    d["eval_resize_short_side"] = 32
  return d


@pytest.mark.slow
def test_every_rows_data_section_feeds_its_sampling_and_augmentation(tiny_tfrecords):
  from vivit_jax.data.builder import create_iterator  # pylint: disable=import-outside-toplevel
  seen = set()
  for file, row in ALL_ROWS:
    data = _tiny_data(load(file, row), tiny_tfrecords)
    key = repr(sorted((k, v) for k, v in data.items() if k != "num_classes"))
    if key in seen:
      continue
    seen.add(key)
    train = next(iter(create_iterator(data, train=True, batch_size=2)))
    assert train["video"].shape == (2, 4, 32, 32, 3), (file, row)
    assert set(np.asarray(train["label"]).tolist()) <= {0, 1, 2}
    views = data["eval_temporal_views"] * data["eval_spatial_views"]
    evaluation = list(create_iterator(data, train=False, batch_size=3))
    clips = sum(int(np.sum(b.get("valid", np.ones(len(b["label"]))))) for b in evaluation)
    assert clips == 3 * views, (file, row)
