"""Clips for keras_vgg4d: demo data, loaders, and the `tf.data` pipeline.

- `demo_clips`: procedurally drawn clips for three tasks that tell the
  temporal strategies apart; no download. `save_clip_grid` draws clips.
- `load_arrays`, `load_npz`: clips already in memory or in an `.npz`.
- `load_folder`: a folder with one subfolder per class, each clip a `.npy`
  file or a folder of frame images.
- `load_nifti`: 4D NIfTI volumes, slices over time.
- `make_dataset`: a batched, shuffled, augmented, prefetched
  `tf.data.Dataset`; `split_balanced`: a validation split with every class
  on both sides.

Every loader validates its input before training starts and names the
file or index of anything wrong.
"""

from keras_vgg4d.data.arrays import load_arrays
from keras_vgg4d.data.arrays import load_npz
from keras_vgg4d.data.demo import TASKS
from keras_vgg4d.data.demo import demo_class_names
from keras_vgg4d.data.demo import demo_clips
from keras_vgg4d.data.demo import save_clip_grid
from keras_vgg4d.data.folder import FolderClips
from keras_vgg4d.data.folder import load_folder
from keras_vgg4d.data.nifti import load_nifti
from keras_vgg4d.data.pipeline import make_dataset
from keras_vgg4d.data.pipeline import split_balanced

__all__ = [
    "TASKS",
    "FolderClips",
    "demo_class_names",
    "demo_clips",
    "load_arrays",
    "load_folder",
    "load_nifti",
    "load_npz",
    "make_dataset",
    "save_clip_grid",
    "split_balanced",
]
