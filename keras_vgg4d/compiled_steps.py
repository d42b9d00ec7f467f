"""Compiled head steps that a search's trials share, one per architecture.

Keras Tuner clears the session before every trial, and each trial's new head
model traces (TensorFlow) or compiles (JAX) its train and test steps again:
most of a short trial. Here, trials that train heads on cached features
train through one compiled head model per head *architecture*: the head's
class and configuration, the shapes of its inputs and how it is compiled,
leaving out the values that change no shape. Those enter as data:

- the learning rate is the optimizer's `learning_rate` variable;
- the dropout rate is a variable of `VariableRateDropout`, which replaces the
  head's `keras.layers.Dropout` in the shared model.

A trial's own head (built and initialized as before, from the trial's seed)
is copied into the shared model at the start of every epoch, with (at the
start of training) the optimizer state the trial's own optimizer starts
from and its dropout layer's seed; the shared model's weights are copied
back into the trial's head at every epoch's end, before the trial's
callbacks (the tuner's checkpoint, `EarlyStopping`) see it, and the trial's
classifier gets an optimizer holding the trained state. So a trial trains
as it would alone (tested equal), but for its dropout masks: drawn by
`VariableRateDropout` from the trial's own seed, they are not the ones
`keras.layers.Dropout` would draw. Its model is the one the tuner keeps. Callbacks that act within an epoch (on batches, or
during validation) see the weights of the last epoch's end.
"""

from __future__ import annotations

import functools
import json

import keras
import numpy as np
from keras import ops

from keras_vgg4d.validation import check_rate


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class VariableRateDropout(keras.layers.Layer):
    """Dropout whose rate is a variable, so a compiled step reads it as data.

    In training, each input value is set to 0 with probability `rate` and
    the others are scaled by `1 / (1 - rate)`, as `keras.layers.Dropout`
    does, though with masks drawn from another random stream; at inference
    the input passes unchanged. The rate is the
    non-trainable weight `rate`: `layer.rate.assign(0.3)` changes what an
    already compiled train step does, where `keras.layers.Dropout` bakes its
    rate into the step.

    Args:
        rate: The initial rate, in `[0, 1)`.
        seed: Optional integer seed of the dropout masks.
        **kwargs: Base layer keyword arguments, such as `name`.

    Example:

    >>> import numpy as np
    >>> layer = VariableRateDropout(0.5, seed=1)
    >>> x = np.ones((1, 1000), "float32")
    >>> y = np.asarray(layer(x, training=True))
    >>> sorted(set(np.round(y.ravel(), 3).tolist()))
    [0.0, 2.0]
    >>> _ = layer.rate.assign(0.0)
    >>> bool((np.asarray(layer(x, training=True)) == x).all())
    True
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.initial_rate = check_rate("VariableRateDropout", "rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rate = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_rate),
            trainable=False,
            name="rate",
        )
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        # `keras.random.dropout` reads its rate as a Python number.
        keep = 1.0 - ops.cast(self.rate, inputs.dtype)
        noise = keras.random.uniform(
            ops.shape(inputs), seed=self.seed_generator, dtype=inputs.dtype
        )
        # `noise < 1` always holds, so rate 0 is the identity exactly.
        return ops.where(noise < keep, inputs / keep, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.initial_rate, "seed": self.seed})
        return config


@functools.cache
def _with_variable_dropout(head_class: type) -> type:
    """`head_class` with a `VariableRateDropout` before its classifier."""

    def make_dropout(self):
        return VariableRateDropout(self.dropout, name="variable_dropout")

    return type(head_class.__name__, (head_class,), {"make_dropout": make_dropout})


def architecture_key(head: keras.layers.Layer, head_model: keras.Model):
    """What a compiled step of `head_model` depends on, as a string.

    The head's class and configuration without its dropout rate and name,
    the shapes and dtypes of the head model's inputs, and its compile
    configuration without the optimizer's (constant) learning rate and
    name. `None` where the compile configuration cannot be written down
    (e.g. a metric whose `get_config` fails): such trials compile their
    own step, as do those whose configuration Keras cannot compile again
    (an unregistered custom loss; see `SharedHeadSteps.get`).
    """
    config = dict(head.get_config())
    for name in ("dropout", "name"):
        config.pop(name, None)
    try:
        compiled = head_model.get_compile_config()
        compiled = json.loads(json.dumps(compiled, sort_keys=True))
    except Exception:  # anything Keras cannot serialize: not shared
        return None
    if not compiled:
        return None
    optimizer = compiled.get("optimizer")
    if isinstance(optimizer, dict):
        options = optimizer.get("config", {})
        options.pop("name", None)
        if isinstance(options.get("learning_rate"), (int, float)):
            options.pop("learning_rate")
    inputs = [(tuple(x.shape[1:]), str(x.dtype)) for x in head_model.inputs]
    return json.dumps(
        [type(head).__module__, type(head).__qualname__, config, inputs,
         compiled],
        sort_keys=True,
        default=repr,
    )


class SharedHeadStep:
    """One compiled head model, trained in turn by the trials it fits.

    Built from the first trial's head and compiled head model: a copy of
    the head with `VariableRateDropout`, and a head model compiled from the
    trial's compile configuration. Keras keeps its train and test functions
    between `fit` calls, so later trials reuse them.

    Args:
        head: A built temporal head (e.g. `FramewiseHead`).
        head_model: A compiled model from features and frame mask to the
            head's probabilities (`VGG4DClassifier.head_model()`).
    """

    def __init__(self, head: keras.layers.Layer, head_model: keras.Model):
        self.head = _with_variable_dropout(type(head)).from_config(
            head.get_config()
        )
        inputs = [
            keras.Input(x.shape[1:], dtype=x.dtype, name=x.name)
            for x in head_model.inputs
        ]
        outputs = self.head(inputs[0], mask=inputs[1])
        self.model = keras.Model(inputs, outputs, name="shared_head_model")
        self.model.compile_from_config(head_model.get_compile_config())
        self.model.optimizer.build(self.model.trainable_variables)
        dropout = self.head.dropout_layer
        self.dropout_rate = dropout.rate
        self.seed_state = dropout.seed_generator.state
        self._trial_optimizer = None
        self._weights = [w for w in self.head.weights if w is not self.dropout_rate]
        self.trials = 0

    def _pairs(self, head) -> list:
        if len(head.weights) != len(self._weights) or any(
            tuple(a.shape) != tuple(b.shape)
            for a, b in zip(head.weights, self._weights)
        ):
            raise ValueError(
                f"The head {head.name!r} does not have the architecture of "
                "this shared step; build one for it."
            )
        return list(zip(head.weights, self._weights))

    def start(self, head, optimizer) -> None:
        """Prepares a trial: its optimizer's state (the learning rate
        included), its dropout rate and its dropout layer's seed state; its
        weights are taken when training begins (`callbacks`).

        Args:
            head: The trial's built head, with its initial weights.
            optimizer: The optimizer the trial was compiled with, not yet
                built. A copy of it, built on the shared model's variables,
                gives the state a fresh optimizer starts from; `finish`
                builds it on the trial's own head.
        """
        self._pairs(head)
        fresh = optimizer.__class__.from_config(optimizer.get_config())
        fresh.build(self.model.trainable_variables)
        _copy(fresh.variables, self.model.optimizer.variables,
              "the trial's optimizer and the shared step's")
        self.dropout_rate.assign(head.dropout)
        # Keras' `Dropout` has a seed generator only with a rate above 0.
        generator = getattr(head.dropout_layer, "seed_generator", None)
        if generator is not None:
            self.seed_state.assign(generator.state.value)
        self._trial_optimizer = optimizer
        self.trials += 1

    def finish(self, model) -> None:
        """Gives the trial's classifier `model` its own optimizer, built on
        its head and holding the state training left in the shared one."""
        optimizer = self._trial_optimizer
        optimizer.build(model.head.trainable_variables)
        _copy(self.model.optimizer.variables, optimizer.variables,
              "the shared step's optimizer and the trial's")
        model.optimizer = optimizer
        self._trial_optimizer = None

    def fit(self, x, y=None, **kwargs):
        """`self.model.fit(x, y, **kwargs)`, in the data order of a first fit.

        Keras' first `fit` of a model draws one NumPy permutation of array
        inputs while it builds the metrics (on JAX); later fits do not. The shared model's later fits draw
        it too, so each trial sees the batches it would see alone.
        """
        if (
            self.trials > 1  # `start` counted this trial
            and keras.backend.backend() == "jax"
            and y is not None
            and kwargs.get("shuffle", True) is True
        ):
            np.random.permutation(len(y))
        # The epoch a callback resumed an earlier trial from (Keras keeps
        # it on the model) is not this trial's.
        self.model._initial_epoch = None
        return self.model.fit(x, y, **kwargs)

    def take(self, head) -> None:
        """Copies `head`'s weights into the shared model."""
        for source, target in self._pairs(head):
            target.assign(source.value)

    def give(self, head) -> None:
        """Copies the shared model's weights into `head`."""
        for target, source in self._pairs(head):
            target.assign(source.value)

    def callbacks(self, head, callbacks: list) -> list:
        """`callbacks` between the two that move weights for `head`'s trial.

        The first copies the trained weights into the trial's head at each
        epoch's end, before the others see it; the last copies the trial's
        head into the shared model when each epoch begins, after the others
        (so what a callback restores or changes, such as
        `BackupAndRestore`'s weights, is what trains).
        """
        return [_GiveEachEpoch(self, head), *callbacks, _TakeEachEpoch(self, head)]


class _GiveEachEpoch(keras.callbacks.Callback):
    def __init__(self, step, head):
        super().__init__()
        self.step, self.head = step, head

    def on_epoch_end(self, epoch, logs=None):
        self.step.give(self.head)


class _TakeEachEpoch(keras.callbacks.Callback):
    def __init__(self, step, head):
        super().__init__()
        self.step, self.head = step, head

    def on_epoch_begin(self, epoch, logs=None):
        self.step.take(self.head)


def _copy(sources, targets, what: str) -> None:
    sources, targets = list(sources), list(targets)
    if [tuple(v.shape) for v in sources] != [tuple(v.shape) for v in targets]:
        raise ValueError(
            f"The variables of {what} do not match; this is a bug in "
            "keras_vgg4d.compiled_steps."
        )
    for source, target in zip(sources, targets):
        target.assign(source.value)


class SharedHeadSteps:
    """A search's shared compiled head steps, one per architecture.

    Example:

    >>> import keras
    >>> from keras_vgg4d import VGG4DClassifier
    >>> steps = SharedHeadSteps()
    >>> def trial(dropout):
    ...     model = VGG4DClassifier(2, dropout=dropout)
    ...     model.build((None, 2, 32, 32, 3))
    ...     head_model = model.head_model()
    ...     head_model.compile("adam", "sparse_categorical_crossentropy")
    ...     return steps.get(model.head, head_model)
    >>> trial(0.0) is trial(0.4), len(steps)
    (True, 1)
    """

    def __init__(self):
        self._steps = {}

    def __len__(self) -> int:
        """The number of shared steps made."""
        return sum(step is not None for step in self._steps.values())

    def get(self, head, head_model) -> SharedHeadStep | None:
        """The shared step for `head` compiled as `head_model`; `None` where
        its compile configuration cannot be compared (see
        `architecture_key`), and on PyTorch, where Keras runs the steps
        eagerly: there is nothing compiled to share."""
        if keras.backend.backend() == "torch":
            return None
        key = architecture_key(head, head_model)
        if key is None:
            return None
        if key not in self._steps:
            try:
                self._steps[key] = SharedHeadStep(head, head_model)
            except Exception:  # e.g. an unregistered custom loss
                self._steps[key] = None  # Keras cannot compile it again
        return self._steps[key]
