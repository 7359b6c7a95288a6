"""Deprecated name of `vivit_jax.data.make_tfrecords` (videos -> TFRecords).

`python -m vivit_jax.data.convert ...` still works for one release: it prints
the new command and runs it with the same flags.
"""

import sys

from vivit_jax.data.make_tfrecords import main, shard_path, write_tfrecords

convert = write_tfrecords
__all__ = ["convert", "main", "shard_path", "write_tfrecords"]

if __name__ == "__main__":
  print("note: `python -m vivit_jax.data.convert` is deprecated; use `python -m "
        "vivit_jax.data.make_tfrecords` (same flags)", file=sys.stderr, flush=True)
  sys.exit(main())
