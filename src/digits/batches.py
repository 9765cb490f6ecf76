"""The tf.data pipelines that feed tuning trials and training: seeded by epoch, so resumable.

Each epoch's order is a permutation drawn from `(seed, epoch)` alone, so a run resumed at epoch k
sees exactly the batches an uninterrupted run sees at epoch k (a `Dataset.shuffle` reshuffling
each iteration would replay epoch 1's order after a restart). Fed NumPy arrays instead of a
tf.data pipeline, Keras stalled ~10 s at the start of 2 of 6 epochs that followed a predict pass
(measured on 2 cores); fed a pipeline, it did not.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from digits.data import NUM_CLASSES, Split


def steps_per_epoch(split: Split, batch_size: int) -> int:
    return math.ceil(len(split) / batch_size)


def epoch_order(size: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of `epoch` (0-based): a permutation of `size` indices, int64."""
    return np.random.default_rng([seed, epoch]).permutation(size)


def shuffled_batches(
    split: Split,
    batch_size: int,
    seed: int,
    epochs: range,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """Batches of (images N x 28 x 28 uint8, labels) for every epoch in `epochs`, in order.

    Labels are N uint8 digits, or N x 10 float32 one-hot rows with `one_hot` (for losses that
    smooth labels). Fit with `steps_per_epoch=steps_per_epoch(split, batch_size)` and
    `initial_epoch=epochs.start`, so Keras keeps one iterator across epochs.
    """
    orders = np.stack([epoch_order(len(split), seed, epoch) for epoch in epochs])
    return (
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        .map(_gather(split, one_hot), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def ordered_batches(split: Split, batch_size: int, one_hot: bool = False) -> tf.data.Dataset:
    """The split in stored order, for validation: (images, labels) batches as above."""
    indices = tf.data.Dataset.range(len(split)).batch(batch_size)
    return indices.map(_gather(split, one_hot)).prefetch(tf.data.AUTOTUNE)


def _gather(split: Split, one_hot: bool):
    images = tf.constant(split.images)
    labels = tf.constant(split.labels)

    def gather(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch_labels = tf.gather(labels, indices)
        if one_hot:
            batch_labels = tf.one_hot(tf.cast(batch_labels, tf.int32), NUM_CLASSES)
        return tf.gather(images, indices), batch_labels

    return gather
