"""Clips for keras_vgg4d: demo data, loaders, and the `tf.data` pipeline.

- `demo_clips`: procedurally drawn clips for three tasks that tell the
  temporal strategies apart; no download. `save_clip_grid` draws clips.
- `load_arrays`, `load_npz`: clips already in memory or in an `.npz`.
- `load_folder`: a folder with one subfolder per class, each clip a `.npy`
  file or a folder of frame images.
- `load_nifti`: 4D NIfTI volumes, slices over time.
- `load_dicom`: DICOM cine files and series (pydicom), one clip a
  multi-frame file or slice position; `scale_intensity`: the windowing
  and percentile scaling to 0..255 that DICOM and NIfTI share.
- `clip_dataset_from_directory`: a streaming `tf.data.Dataset` over a
  tree of videos (PyAV), frame folders, `.npy` clips, NIfTI volumes and
  DICOM files and series,
  shaped after `keras.utils.image_dataset_from_directory`, with temporal
  sampling drawn anew each epoch and group-aware validation splits.
  Its parts, for reuse: `index_clip_directory`, `split_clip_sources`,
  `read_clip` (`ClipSource`), `sample_frame_indices`, `resize_clip`,
  and for videos `probe_video`, `read_video`, `write_video`.
- `make_dataset`: a batched, shuffled, augmented, prefetched
  `tf.data.Dataset`; `split_balanced`: a validation split with every class
  on both sides, and optionally groups kept on one side.

Every loader validates its input before training starts and names the
file or index of anything wrong.
"""

from keras_vgg4d.data.arrays import load_arrays
from keras_vgg4d.data.arrays import load_npz
from keras_vgg4d.data.demo import TASKS
from keras_vgg4d.data.demo import demo_class_names
from keras_vgg4d.data.demo import demo_clips
from keras_vgg4d.data.demo import save_clip_grid
from keras_vgg4d.data.dicom import DICOM_EXTENSIONS
from keras_vgg4d.data.dicom import DicomClips
from keras_vgg4d.data.dicom import load_dicom
from keras_vgg4d.data.folder import FolderClips
from keras_vgg4d.data.folder import load_folder
from keras_vgg4d.data.groups import UCF101_GROUP_PATTERN
from keras_vgg4d.data.groups import group_split
from keras_vgg4d.data.intensity import INTENSITY_MODES
from keras_vgg4d.data.intensity import scale_intensity
from keras_vgg4d.data.nifti import load_nifti
from keras_vgg4d.data.pipeline import make_dataset
from keras_vgg4d.data.pipeline import split_balanced
from keras_vgg4d.data.sampling import SAMPLINGS
from keras_vgg4d.data.sampling import sample_frame_indices
from keras_vgg4d.data.sources import ClipIndex
from keras_vgg4d.data.sources import ClipSource
from keras_vgg4d.data.sources import index_clip_directory
from keras_vgg4d.data.sources import read_clip
from keras_vgg4d.data.sources import split_clip_sources
from keras_vgg4d.data.streaming import clip_dataset_from_directory
from keras_vgg4d.data.streaming import resize_clip
from keras_vgg4d.data.video import VIDEO_EXTENSIONS
from keras_vgg4d.data.video import VideoInfo
from keras_vgg4d.data.video import probe_video
from keras_vgg4d.data.video import read_video
from keras_vgg4d.data.video import write_video

__all__ = [
    "DICOM_EXTENSIONS",
    "INTENSITY_MODES",
    "SAMPLINGS",
    "TASKS",
    "UCF101_GROUP_PATTERN",
    "VIDEO_EXTENSIONS",
    "ClipIndex",
    "ClipSource",
    "DicomClips",
    "FolderClips",
    "VideoInfo",
    "clip_dataset_from_directory",
    "demo_class_names",
    "demo_clips",
    "group_split",
    "index_clip_directory",
    "load_arrays",
    "load_dicom",
    "load_folder",
    "load_npz",
    "load_nifti",
    "make_dataset",
    "probe_video",
    "read_clip",
    "read_video",
    "resize_clip",
    "sample_frame_indices",
    "save_clip_grid",
    "scale_intensity",
    "split_balanced",
    "split_clip_sources",
    "write_video",
]
