"""A linear probe: softmax regression on fixed features, NumPy only.

Used by `scripts/pretraining_gain.py` (frozen encoders' features) and by the
demo world's tests (pixels and motion features of raw clips).
"""

import numpy as np


def softmax_regression(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                       num_classes: int, steps: int = 500, learning_rate: float = 0.5,
                       l2: float = 1e-2) -> np.ndarray:
  """Predicted classes `(M,)` of `test_x` `(M, F)` by a linear softmax
  classifier fit on `train_x` `(N, F)`, `train_y` `(N,)` ints, by full-batch
  gradient descent on features standardised with the training statistics."""
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
  w, b = np.zeros((train_x.shape[1], num_classes)), np.zeros(num_classes)
  onehot = np.eye(num_classes)[train_y]
  for _ in range(steps):
    logits = train_x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - onehot) / len(train_x)
    w -= learning_rate * (train_x.T @ grad + l2 * w)
    b -= learning_rate * grad.sum(0)
  return (test_x @ w + b).argmax(1)
