"""Serving: a model checkpoint applied to decoded video, files or live streams.

  inference.py       `load_classifier`: input spec, preprocessing, jitted softmax.
  served_model.py    `load_served_model`: the pure `function(params, video)`
                     that `vivit_jax.export` serializes.
  predict.py         `vivit-predict`: top-k classes per video file.
  stream.py          `vivit-stream`: live classification (file, URL, device).
  stream_buffers.py  the frame queue and sliding window of `stream`.
  video_io.py        PyAV decoding: random access into files, live sources.
  flags.py           the command-line flags `predict` and `stream` share.

Frames are sampled with `vivit_jax.data.eval_views.view_indices`, the
formula the training pipeline's eval uses. Nothing here imports TensorFlow.
"""
