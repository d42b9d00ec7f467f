"""Clips/s of ScipyAugment against two other ways to augment clips.

All three run in the same `tf.data` pipeline (`from_tensor_slices(clips)
.map(augment, num_parallel_calls=N)`), on uint8 clips of 8 frames of
112x112x3, with rotation, zoom and shift, bilinear, reflect padding:

- tutorial: per frame, `scipy.ndimage.rotate`, then `scipy.ndimage.zoom`
  (cropped or padded back to the frame size), then
  `scipy.ndimage.affine_transform` for the shift: three resamplings, in a
  `tf.py_function`;
- keras: `RandomRotation` -> `RandomZoom` -> `RandomTranslation`, in graph,
  made clip-consistent: one `get_random_transformation` per clip, and
  `transform_images` on all its frames: three resamplings;
- scipy_augment: `ScipyAugment`: one resampling of the clip, its taps
  shared by all planes (`keras_vgg4d.resampling.affine_resample`).

Then ScipyAugment's scaling from `num_parallel_calls=1` to `2`, mapped per
clip and per batch of clips; and, outside tf.data, the cost of resampling
one clip with `affine_resample` against `scipy.ndimage.affine_transform` on
each of its 2-D planes (the two give the same output). Repetitions alternate between the variants and
the medians are reported, so the load of a shared machine hits all alike.

    python benchmarks/bench_augment.py --clips 32 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy import ndimage  # noqa: E402

from keras_vgg4d import ScipyAugment  # noqa: E402
from keras_vgg4d.ndimage_ops import FrameParameters  # noqa: E402
from keras_vgg4d.ndimage_ops import sampling_matrix  # noqa: E402
from keras_vgg4d.resampling import affine_resample  # noqa: E402


def make_clips(count, frames, size, seed):
    """Smooth random uint8 clips (blurred noise), `(count, T, H, W, 3)`."""
    rng = np.random.default_rng(seed)
    noise = rng.random((count, frames, size, size, 3), dtype=np.float32)
    smooth = ndimage.gaussian_filter(noise, (0, 0, 3, 3, 0))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


def _center_fit(frame, height, width, mode):
    """Crops or pads a zoomed `(h, w, C)` frame back to `(height, width, C)`,
    as the tutorial does after `scipy.ndimage.zoom`."""
    for axis, size in ((0, height), (1, width)):
        extra = frame.shape[axis] - size
        if extra > 0:
            start = extra // 2
            frame = np.take(frame, range(start, start + size), axis=axis)
        elif extra < 0:
            pad = [(0, 0)] * frame.ndim
            pad[axis] = (-extra // 2, -extra - (-extra // 2))
            frame = np.pad(frame, pad, mode="symmetric" if mode == "reflect"
                           else "edge")
    return frame


def tutorial_augment(rotation, zoom, shift, order, mode, seed):
    """The tutorial's way: three ndimage calls per frame, in a py_function."""
    rng = np.random.default_rng(seed)

    def augment_clip(clip):
        clip = clip.numpy()
        _, height, width, _ = clip.shape
        angle = rng.uniform(-rotation, rotation)
        factor = rng.uniform(*zoom)
        dy, dx = rng.uniform(-shift, shift, 2) * (height, width)
        frames = []
        for frame in clip.astype(np.float32):
            frame = ndimage.rotate(frame, angle, reshape=False, order=order,
                                   mode=mode)
            frame = ndimage.zoom(frame, (factor, factor, 1), order=order,
                                 mode=mode)
            frame = _center_fit(frame, height, width, mode)
            frame = ndimage.affine_transform(
                frame, np.eye(3), offset=(-dy, -dx, 0), order=order, mode=mode
            )
            frames.append(frame)
        out = np.clip(np.rint(np.stack(frames)), 0, 255)
        return out.astype(np.uint8)

    def augment(clip):
        out = tf.py_function(augment_clip, [clip], Tout=tf.uint8)
        out.set_shape(clip.shape)
        return out

    return augment


def keras_chain_augment(rotation, zoom, shift, seed):
    """Keras' layers in graph, one random transformation per clip."""
    layers = [
        keras.layers.RandomRotation(
            rotation / 360.0, fill_mode="reflect", interpolation="bilinear",
            seed=seed,
        ),
        # Keras' zoom factor is the opposite sign of a magnification:
        # -0.2 is 1.2x in, 0.2 is 0.8x (out).
        keras.layers.RandomZoom(
            (1.0 - zoom[1], 1.0 - zoom[0]), fill_mode="reflect",
            interpolation="bilinear", seed=seed + 1,
        ),
        keras.layers.RandomTranslation(
            shift, shift, fill_mode="reflect", interpolation="bilinear",
            seed=seed + 2,
        ),
    ]

    def augment(clip):
        frames = tf.cast(clip, tf.float32)
        for layer in layers:
            transformation = layer.get_random_transformation(
                frames[:1], training=True
            )
            frames = layer.transform_images(frames, transformation,
                                            training=True)
        return tf.cast(tf.clip_by_value(tf.round(frames), 0, 255), tf.uint8)

    return augment


def scipy_augment(rotation, zoom, shift, order, mode, seed):
    layer = ScipyAugment(rotation=rotation, zoom=zoom, shift=shift,
                         order=order, mode=mode, seed=seed)
    return lambda clips: layer(clips, training=True)


def pipeline(clips, augment, parallel, batch=None):
    dataset = tf.data.Dataset.from_tensor_slices(clips)
    if batch:
        dataset = dataset.batch(batch)
    return dataset.map(augment, num_parallel_calls=parallel).prefetch(2)


def measure(dataset, count):
    """Clips/s (wall clock), and CPU milliseconds per clip summed over all
    threads of the process: the cost, less sensitive to a shared machine's
    load than the rate."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in dataset:
        pass
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return count / wall, 1e3 * cpu / count


def check_clip_consistent(name, augment, clip):
    """Every competitor must move the frames of a clip together."""
    out = np.asarray(augment(tf.constant(clip)))
    if not all(np.array_equal(frame, out[0]) for frame in out[1:]):
        raise AssertionError(f"{name} does not move a clip's frames together")
    if np.array_equal(out, clip):
        raise AssertionError(f"{name} did not change the clip")


def resampling_cost(clips, order, mode, repeats):
    """Milliseconds to resample one clip (min over repeats, alternated):
    `affine_resample` on all its planes at once vs SciPy on each plane."""
    _, frames, height, width, channels = clips.shape
    matrix = sampling_matrix(
        FrameParameters(rotation=10.0, zoom=1.1, shift_y=0.05), height, width
    )
    kwargs = {"order": order, "mode": mode}

    def shared_taps(clip):
        planes = np.ascontiguousarray(clip.transpose(1, 2, 0, 3))
        return affine_resample(
            planes.reshape(height, width, frames * channels), matrix, **kwargs
        )

    def scipy_per_plane(clip):
        planes = np.ascontiguousarray(np.moveaxis(clip, -1, 1))
        out = np.empty_like(planes)
        for frame, frame_out in zip(planes, out):
            for plane, plane_out in zip(frame, frame_out):
                ndimage.affine_transform(
                    plane, matrix[:2, :2], offset=matrix[:2, 2],
                    output=plane_out, **kwargs,
                )
        return out

    costs = {"shared_taps": [], "scipy_per_plane": []}
    for _ in range(repeats):
        for name, fn in (("shared_taps", shared_taps),
                         ("scipy_per_plane", scipy_per_plane)):
            start = time.perf_counter()
            for clip in clips:
                fn(clip)
            costs[name].append(1e3 * (time.perf_counter() - start)
                               / len(clips))
    return {name: min(values) for name, values in costs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--rotation", type=float, default=15.0)
    parser.add_argument("--zoom", type=float, nargs=2, default=(0.8, 1.2))
    parser.add_argument("--shift", type=float, default=0.1)
    parser.add_argument("--order", type=int, default=1)
    parser.add_argument("--mode", default="reflect")
    parser.add_argument("--batch", type=int, default=8,
                        help="clips per map call in the per-batch scaling run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    clips = make_clips(args.clips, args.frames, args.size, args.seed)
    geometry = (args.rotation, tuple(args.zoom), args.shift)
    competitors = {
        "tutorial": tutorial_augment(*geometry, args.order, args.mode,
                                     args.seed),
        "keras": keras_chain_augment(*geometry, args.seed),
        "scipy_augment": scipy_augment(*geometry, args.order, args.mode,
                                       args.seed),
    }
    still = np.repeat(clips[:1, :1], args.frames, axis=1)[0]
    for name, augment in competitors.items():
        check_clip_consistent(name, augment, still)

    batched = scipy_augment(*geometry, args.order, args.mode, args.seed)
    variants = {
        f"{name} (parallel 2)": pipeline(clips, fn, 2)
        for name, fn in competitors.items()
    }
    variants["scipy_augment per clip (parallel 1)"] = pipeline(
        clips, competitors["scipy_augment"], 1)
    variants[f"scipy_augment per batch of {args.batch} (parallel 1)"] = (
        pipeline(clips, batched, 1, batch=args.batch))
    variants[f"scipy_augment per batch of {args.batch} (parallel 2)"] = (
        pipeline(clips, batched, 2, batch=args.batch))

    for dataset in variants.values():  # warm-up: tracing, first calls
        measure(dataset, args.clips)
    rates = {name: [] for name in variants}
    cpu_ms = {name: [] for name in variants}
    for _ in range(args.repeats):  # A, B, C, ... then again: alternated
        for name, dataset in variants.items():
            rate, cost = measure(dataset, args.clips)
            rates[name].append(rate)
            cpu_ms[name].append(cost)
    median = {name: statistics.median(r) for name, r in rates.items()}

    print(f"{args.clips} clips of {args.frames}x{args.size}x{args.size}x3 "
          f"uint8, rotation {args.rotation} deg, zoom {tuple(args.zoom)}, "
          f"shift {args.shift}, order {args.order}, mode {args.mode!r}; "
          f"median of {args.repeats} alternated repetitions\n")
    print(f"{'variant':52s} {'clips/s':>9s} {'CPU ms/clip':>12s}")
    for name, value in median.items():
        cost = statistics.median(cpu_ms[name])
        print(f"{name:52s} {value:9.1f} {cost:12.1f}")
    def ratio(numerator, denominator):
        """Ratio of the medians, and the median of the ratios of the same
        repetition (measured seconds apart, so they share the load)."""
        paired = statistics.median(
            a / b for a, b in zip(rates[numerator], rates[denominator])
        )
        return (f"{median[numerator] / median[denominator]:5.2f}x "
                f"(paired: {paired:5.2f}x)")

    ours = "scipy_augment (parallel 2)"
    per_batch = f"scipy_augment per batch of {args.batch}"
    print("\nratios at num_parallel_calls=2")
    print(f"  scipy_augment / tutorial:  "
          f"{ratio(ours, 'tutorial (parallel 2)')}")
    print(f"  scipy_augment / keras:     {ratio(ours, 'keras (parallel 2)')}")
    keras_cost = statistics.median(cpu_ms["keras (parallel 2)"])
    tutorial_cost = statistics.median(cpu_ms["tutorial (parallel 2)"])
    our_cost = statistics.median(cpu_ms[ours])
    print(f"  CPU per clip, tutorial / scipy_augment: "
          f"{tutorial_cost / our_cost:5.2f}x")
    print(f"  CPU per clip, keras / scipy_augment:    "
          f"{keras_cost / our_cost:5.2f}x")
    print("scaling of scipy_augment, num_parallel_calls 2 / 1")
    print(f"  mapped per clip:           "
          f"{ratio(ours, 'scipy_augment per clip (parallel 1)')}")
    print(f"  mapped per batch of {args.batch}:     "
          f"{ratio(per_batch + ' (parallel 2)', per_batch + ' (parallel 1)')}")
    cost = resampling_cost(clips, args.order, args.mode, args.repeats)
    print("one resampling of a clip, this thread (min of repeats)")
    print(f"  affine_resample, taps shared by {3 * args.frames} planes: "
          f"{cost['shared_taps']:6.2f} ms")
    print(f"  scipy.ndimage.affine_transform per plane:    "
          f"{cost['scipy_per_plane']:6.2f} ms  "
          f"({cost['scipy_per_plane'] / cost['shared_taps']:.2f}x)")

if __name__ == "__main__":
    main()
