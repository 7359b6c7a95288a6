"""Training-free token merging (ToMe, Bolya et al., ICLR 2023).

Between the attention and the MLP of a block, `bipartite_soft_matching`
pairs tokens by the cosine similarity of their attention keys (mean over
heads): the tokens are split alternately into sets A (even positions) and
B (odd positions), each A token finds its most similar B token, and the r
A tokens with the most similar matches are merged into them; `merge_wavg`
averages the merged tokens weighted by their size (how many input tokens
each one stands for). Attention then adds `log(size)` to the logits of each
key (proportional attention, `attention.dot_product_attention(bias=...)`),
and an average-pooling classifier averages the tokens weighted by size
(`weighted_mean`).

Every shape is static: a layer that sees L tokens and merges r leaves
`L - r` (`merged_length`), known when tracing, so a merged model jits and
exports like any other (argsort, gathers and a one-hot matmul for the
scatter-add; no data-dependent shapes), to ONNX too (`vivit_jax.export.onnx`).

The model option `token_merging` (`ViViT.token_merging`) is a tuple of
ints: `()` (off, the default), `(r,)` (r tokens merged in every block of
the merged encoder) or one r per block (a schedule). `parse` reads the
`vivit-compress --token-merging` flag's `8`, `8,8,4,...` or `25%` form;
`P%` merges P% of the mergeable tokens entering each block
(`proportional_schedule`: front-loaded, most tokens go in the first blocks
where they cost most) and `resolve` turns it into the explicit per-block
schedule of a given sequence, which is what a checkpoint stores.
"""

from typing import NamedTuple, Sequence, Tuple, Union

import jax
import jax.numpy as jnp


# ToMe's cap: a block merges at most half of its mergeable tokens, so a
# per-block fraction above one half asks for more than any block can merge.
MAX_FRACTION = 0.5
# A parsed `--token-merging` flag: counts (`(r,)` or one per block), or the
# fraction of each block's mergeable tokens (`P%` -> P / 100).
Merging = Union[Tuple[int, ...], float]


class MergePlan(NamedTuple):
  """Which tokens merge, per example, for tokens split into A (even
  positions, `Na` of them) and B (odd positions, `Nb`).

  unmerged: `(B, Na - r)` A indices kept, ascending (so a protected first
    token stays first);
  sources: `(B, r)` A indices merged away;
  targets: `(B, r)` the B index each source merges into.
  """

  unmerged: jax.Array
  sources: jax.Array
  targets: jax.Array


def merged_r(num_tokens: int, r: int, protect_first: bool) -> int:
  """The r actually merged from `num_tokens` tokens: at most half the
  unprotected ones (ToMe's cap), never negative."""
  return max(0, min(int(r), (num_tokens - int(protect_first)) // 2))


def merged_length(num_tokens: int, r: int, protect_first: bool) -> int:
  """Tokens left after merging r of `num_tokens`."""
  return num_tokens - merged_r(num_tokens, r, protect_first)


def token_counts(num_tokens: int, schedule: Sequence[int], protect_first: bool) -> Tuple[int, ...]:
  """Tokens leaving each block: `(L_1, ..., L_n)` for a per-block schedule."""
  counts = []
  for r in schedule:
    num_tokens = merged_length(num_tokens, r, protect_first)
    counts.append(num_tokens)
  return tuple(counts)


def schedule(token_merging: Sequence[int], num_layers: int,
             where: str = "model.token_merging") -> Tuple[int, ...]:
  """The per-block r of a `token_merging` option (see module docstring).

  Returns `()` when merging is off (empty or all zeros), else `num_layers`
  ints. Raises ValueError naming `where` for negative values or a length
  other than 1 or `num_layers`.
  """
  values = tuple(int(r) for r in (token_merging or ()))
  if any(r < 0 for r in values):
    raise ValueError(f"{where}={values} has a negative value; r counts tokens merged per block")
  if len(values) not in (0, 1, num_layers):
    raise ValueError(f"{where}={values} has {len(values)} values; give one r for every block "
                     f"or one per block ({num_layers})")
  if not any(values):
    return ()
  return values * num_layers if len(values) == 1 else values


def proportional_schedule(num_tokens: int, num_layers: int, fraction: float,
                          protect_first: bool) -> Tuple[int, ...]:
  """One r per block merging `fraction` of the mergeable tokens entering it.

  A block entering with L tokens (a protected first token is not mergeable)
  merges `round(fraction * (L - protect_first))` (Python's `round`: halves
  go to the even neighbour), capped as `merged_r` caps, so the result is
  exactly what the model merges and `token_counts(num_tokens, result,
  protect_first)` gives the counts. E.g. 1568 tokens, 12 blocks, 0.25:
  `(392, 294, 220, 166, 124, 93, 70, 52, 39, 30, 22, 16)`, 50 tokens left.
  Raises ValueError unless `0 <= fraction <= MAX_FRACTION`.
  """
  if not 0.0 <= fraction <= MAX_FRACTION:
    raise ValueError(f"fraction={fraction} per block is outside [0, {MAX_FRACTION}]: a block "
                     "merges at most half of its tokens")
  rs = []
  for _ in range(num_layers):
    mergeable = num_tokens - int(protect_first)
    r = merged_r(num_tokens, round(fraction * mergeable), protect_first)
    rs.append(r)
    num_tokens -= r
  return tuple(rs)


def resolve(merging: Merging, num_tokens: int, num_layers: int,
            protect_first: bool) -> Tuple[int, ...]:
  """A parsed flag (`parse`) as the `token_merging` option to store: a
  fraction becomes its `proportional_schedule` for a sequence of
  `num_tokens` (one per block, zeros included); counts stay as given."""
  if isinstance(merging, float):
    return proportional_schedule(num_tokens, num_layers, merging, protect_first)
  return tuple(int(r) for r in merging)


def flag_value(merging: Merging) -> str:
  """`parse`'s inverse, for messages: `0.25` -> `"25%"`, `(8, 4)` -> `"8,4"`."""
  if isinstance(merging, float):
    return f"{100 * merging:g}%"
  return ",".join(str(int(r)) for r in merging)


def parse(text: str) -> Merging:
  """The CLI form: `"8"` -> `(8,)`; `"8,8,4"` -> `(8, 8, 4)`; `"25%"` -> `0.25`
  (merge 25% of each block's mergeable tokens, 0 <= P <= 50). ValueError,
  in the `what (where): fix` form, otherwise."""
  where = f"--token-merging={text}"
  forms = ("give P% with 0 <= P <= 50 (each block merges P% of its tokens), R or R0,R1,... "
           "(non-negative integers, tokens merged per block)")
  if text.strip().endswith("%"):
    try:
      percent = float(text.strip()[:-1])
    except ValueError:
      raise ValueError(f"not a percentage ({where}): {forms}") from None
    if not 0.0 <= percent <= 100 * MAX_FRACTION:
      raise ValueError(f"{text} is outside 0% to 50%: a block merges at most half of its "
                       f"tokens ({where}): {forms}")
    return percent / 100
  bad = ValueError(f"not a token count, a list of counts or a percentage ({where}): {forms}")
  try:
    values = tuple(int(part) for part in text.split(","))
  except ValueError:
    raise bad from None
  if any(r < 0 for r in values):
    raise bad
  return values


def bipartite_soft_matching(metric, r: int, protect_first: bool) -> MergePlan:
  """ToMe's matching on `metric` `(B, L, C)` (the keys, mean over heads).

  `r` must already be capped (`merged_r`). With `protect_first` the token
  at position 0 (a class token) is never merged. Computed in float32
  without gradient, as ToMe does.
  """
  metric = jax.lax.stop_gradient(jnp.asarray(metric, jnp.float32))
  metric = metric / jnp.linalg.norm(metric, axis=-1, keepdims=True)
  a, b = metric[:, ::2], metric[:, 1::2]
  scores = jnp.einsum("bic,bjc->bij", a, b)  # (B, Na, Nb)
  if protect_first:
    scores = scores.at[:, 0, :].set(-jnp.inf)
  best = scores.max(axis=-1)  # (B, Na)
  best_b = scores.argmax(axis=-1)  # (B, Na)
  order = jnp.argsort(best, axis=-1, descending=True, stable=True)  # most similar first
  sources = order[:, :r]
  unmerged = jnp.sort(order[:, r:], axis=-1)
  targets = jnp.take_along_axis(best_b, sources, axis=-1)
  return MergePlan(unmerged, sources, targets)


def merge_sum(plan: MergePlan, x):
  """`(B, L, C)` -> `(B, L - r, C)`: kept A tokens, then B tokens plus the
  sum of the A tokens merged into them."""
  a, b = x[:, ::2], x[:, 1::2]
  kept = jnp.take_along_axis(a, plan.unmerged[..., None], axis=1)
  moved = jnp.take_along_axis(a, plan.sources[..., None], axis=1)
  # The scatter-add b[t] += m as a one-hot matmul (r x Nb per example): ONNX
  # exporters (jax2onnx) take it; the products by 0 and 1 are exact, only the
  # order of the float32 sums may differ from a scatter-add.
  onehot = (plan.targets[..., None] == jnp.arange(b.shape[1])).astype(moved.dtype)
  b = b + jnp.einsum("brn,brc->bnc", onehot, moved, precision=jax.lax.Precision.HIGHEST)
  return jnp.concatenate([kept, b], axis=1)


def merge_wavg(plan: MergePlan, x, size):
  """Size-weighted merge of tokens `x` `(B, L, D)` with sizes `(B, L, 1)`.

  Returns `(x', size')`, `(B, L - r, D)` and `(B, L - r, 1)`; `x'` in `x`'s
  dtype, the sizes (token counts) in float32.
  """
  merged = merge_sum(plan, jnp.asarray(x, jnp.float32) * size)
  size = merge_sum(plan, size)
  return (merged / size).astype(x.dtype), size


def weighted_mean(x, size):
  """`(B, L, D)` tokens of sizes `(B, L, 1)` -> `(B, D)`: the mean of the
  input tokens they stand for."""
  total = jnp.sum(jnp.asarray(x, jnp.float32) * size, axis=1)
  return (total / jnp.sum(size, axis=1)).astype(x.dtype)


def attention_bias(size, dtype):
  """Proportional attention: `log(size)` `(B, L, 1)` -> a logit bias `(B, 1, 1, L)`
  over the keys, for `attention.dot_product_attention`."""
  return jnp.log(size[..., 0])[:, None, None, :].astype(dtype)
