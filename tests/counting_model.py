"""A test model that counts its own training predictions in an `AdaptiveAttentionMap`.

Imported by the child-process scripts of test_custom_loss.py (under TensorFlow's
MirroredStrategy and under the JAX backend), so it imports only Keras and custom_loss:
no TensorFlow of its own. With a learning rate of 0 its predictions stay fixed, so the
map's counts after `fit` can be checked against `predict`.
"""

import keras
from keras import ops

from adcorre.training.custom_loss import AdaptiveAttentionMap


class Counting(keras.Model):
    """Dense softmax classifier; its loss step feeds `attention` while training."""

    def __init__(self, num_classes):
        super().__init__()
        self.dense = keras.layers.Dense(num_classes, activation="softmax")
        self.attention = AdaptiveAttentionMap(num_classes=num_classes)

    def call(self, x, training=False):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if training:
            self.attention.update_state(y, y_pred)
        return ops.mean(keras.losses.sparse_categorical_crossentropy(y, y_pred))
