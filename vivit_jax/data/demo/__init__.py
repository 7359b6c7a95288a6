"""The demo dataset: moving shapes whose class only their motion tells.

  synthetic.py  the clips (`generate_videos`, `iterate_demo_videos`), written
                as mp4s + TFRecords (`write_demo_dataset`) and its data
                config (`demo_data_config`); what `make demo` trains on.
  tfds_demo.py  the same world as a TFDS builder (`data.source="tfds"`,
                `data.tfds_name="vivit_demo_motion/..."`).

A new dataset of files needs no code here (`data.source="video_list"` or
"tfrecord"); a new format is a source in `vivit_jax.data.sources`.
"""
