"""Classifying with an ONNX export in ONNX Runtime (`--backend onnxruntime`).

    classifier = load_onnx_classifier("onnx_out")      # vivit-export --format onnx
    probs = classifier.classify(clips)                 # (B, T, h, w, 3) -> (B, classes)

`OnnxClassifier` is a `serving.inference.Classifier` whose `classify` runs
`OUT/model.onnx` in an `onnxruntime.InferenceSession` (CPU, every graph
optimisation); the input spec, labels and heads come from the export's
`signature.json`, and decoding, frame sampling, preprocessing and ranking are
the Classifier's own. The folder is what `vivit_jax.export.onnx` writes;
`session` is what it uses to check its output, and what a benchmark calls.
"""

import os
from typing import Any, Dict, Optional, Union

import jax
import numpy as np

from vivit_jax.checkpoints.input_spec import resolve_input_spec
from vivit_jax.common import errors, onnx_deps
from vivit_jax.serving import inference

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
FORMAT = "onnx"
EXPORT_HINT = "vivit-export --checkpoint CKPT --output OUT --format onnx"


def session(model: Union[str, Any], threads: Optional[int] = None, spin: bool = True):
  """An `onnxruntime.InferenceSession` on the CPU with every graph optimisation
  (`ORT_ENABLE_ALL`) for `model`: an .onnx path or an `onnx.ModelProto`.
  `threads`: intra-op threads (None: onnxruntime's default, one per core).
  `spin=False` stops its worker threads spinning between calls (a benchmark
  that interleaves runtimes would otherwise lose cores to them)."""
  ort = onnx_deps.require("onnxruntime", "--backend onnxruntime")
  options = ort.SessionOptions()
  options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  if not spin:
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
  if threads:
    options.intra_op_num_threads = int(threads)
  if not isinstance(model, (str, os.PathLike)):
    model = model.SerializeToString()
  return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def read_signature(folder: str) -> Optional[Dict[str, Any]]:
  """The `signature.json` of an export folder (None when it has none)."""
  path = os.path.join(folder, SIGNATURE_FILE)
  if not os.path.isfile(path):
    return None
  return errors.read_json(path, f"export the checkpoint again ({EXPORT_HINT})")


def is_onnx_export(folder: str) -> bool:
  """Whether `folder` holds an ONNX export (its signature says format onnx)."""
  signature = read_signature(folder) if os.path.isdir(folder) else None
  return bool(signature) and signature.get("format") == FORMAT


class OnnxClassifier(inference.Classifier):
  """A `Classifier` running an exported ONNX model in ONNX Runtime.

  Attributes (besides the Classifier's spec, labels, class_splits):
    session: the `onnxruntime.InferenceSession`.
    signature: the export's parsed `signature.json`.
    batch: the batch the model takes: an int, or None for any batch.
  """

  # pylint: disable-next=super-init-not-called
  def __init__(self, ort_session, signature: Dict[str, Any], spec, labels):
    self.model, self.params = None, None
    self.session, self.signature = ort_session, signature
    self.spec, self.labels = spec, list(labels)
    self.class_splits = tuple(int(c) for c in signature["model"].get("class_splits") or ())
    self.batch = None if signature["batch"] == "symbolic" else int(signature["video"]["shape"][0])
    self._input = ort_session.get_inputs()[0].name
    self._softmax = jax.jit(inference.head_softmax, static_argnums=1)

  def classify(self, clips) -> np.ndarray:
    """`(B, T, h, w, 3)` float32 clips -> `(B, num_classes)` float32 softmax.
    A static-batch export runs the clips in chunks of its batch (the last
    one padded)."""
    clips = np.asarray(clips, np.float32)
    if self.batch is None:
      logits = self.session.run(None, {self._input: clips})[0]
    else:
      parts = []
      for start in range(0, len(clips), self.batch):
        chunk = clips[start:start + self.batch]
        padded = np.concatenate([chunk, np.zeros((self.batch - len(chunk), *chunk.shape[1:]),
                                                 np.float32)])
        parts.append(self.session.run(None, {self._input: padded})[0][:len(chunk)])
      logits = np.concatenate(parts)
    return np.asarray(self._softmax(logits, self.class_splits))


def load_onnx_classifier(folder: str, labels_file: Optional[str] = None,
                         threads: Optional[int] = None, **input_overrides) -> OnnxClassifier:
  """An `OnnxClassifier` from a folder written by `vivit-export --format onnx`.

  `input_overrides` (`input_spec.INPUT_KEYS`) may change the frame stride,
  resize and normalisation; num_frames and image_size are fixed by the
  export (overriding them to other values is a ValueError).
  Raises `errors.UserError` for a folder that is not an ONNX export.
  """
  signature = read_signature(folder) if os.path.isdir(folder) else None
  if not signature or signature.get("format") != FORMAT:
    kind = "a model checkpoint" if os.path.isfile(os.path.join(folder, "config.json")) else (
        f"a {signature.get('format')} export" if signature else "not an export")
    raise errors.UserError(f"--backend onnxruntime runs an ONNX export; {folder} is {kind}",
                           "--checkpoint", f"export it first ({EXPORT_HINT}) and pass OUT, "
                           "or use --backend jax")
  where = os.path.join(folder, SIGNATURE_FILE)
  if signature["output"]["name"] != "logits":
    raise ValueError(f"{where}: the export outputs {signature['output']['name']}, "
                     "not class logits")
  spec = resolve_input_spec({"input": signature["input_spec"]}, where, **input_overrides)
  _, frames, height, width, _ = signature["video"]["shape"]
  if (spec.num_frames, *spec.image_size) != (frames, height, width):
    raise errors.UserError(
        f"the export takes {frames} frames of {height}x{width}", "--num-frames/--image-size",
        "drop the flags, or export the checkpoint again with them")
  labels = inference.class_names(signature.get("labels"), signature["model"], labels_file,
                                 where)
  return OnnxClassifier(session(os.path.join(folder, MODEL_FILE), threads), signature, spec,
                        labels)
