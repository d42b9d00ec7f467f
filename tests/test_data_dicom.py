"""DICOM clips: order in time, rescale and windowing, colour, compression,
patient groups, and bad input.

Files are written with pydicom; each frame's stored values carry its own
index (`stored_frame`), so order and values are checked against the
arrays written, through formulas written here independently of the
package. pydicom's own sample files are used where they ship on disk.
"""

import os
import re
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.dataset import FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.pixels import get_encoder  # noqa: E402
from pydicom.pixels.processing import convert_color_space  # noqa: E402
from pydicom.uid import JPEG2000Lossless  # noqa: E402
from pydicom.uid import MPEG4HP41  # noqa: E402
from pydicom.uid import MRImageStorage  # noqa: E402
from pydicom.uid import RLELossless  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from keras_vgg4d.data import clip_dataset_from_directory  # noqa: E402
from keras_vgg4d.data import dicom as dicom_module  # noqa: E402
from keras_vgg4d.data import index_clip_directory  # noqa: E402
from keras_vgg4d.data import load_dicom  # noqa: E402
from keras_vgg4d.data import read_clip  # noqa: E402
from keras_vgg4d.data import scale_intensity  # noqa: E402
from keras_vgg4d.data import split_clip_sources  # noqa: E402

SIZE = 32
UIDS = "1.2.826.0.1.3680043.8.498."  # a root for made-up UIDs


def uid(*parts) -> str:
    return UIDS + ".".join(str(p) for p in parts)


def write_dicom(path, pixels, multi_frame=False, syntax=None, **tags):
    """A DICOM file of `pixels`: `(rows, columns[, 3])`, or frames first
    with `multi_frame`; `tags` set last, so they override; compressed to
    `syntax` by pydicom's own encoders."""
    pixels = np.asarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientID, ds.StudyInstanceUID = "P1", uid(1)
    ds.SeriesInstanceUID = uid(1, 1)
    frame = pixels.shape[1:] if multi_frame else pixels.shape
    color = len(frame) == 3
    ds.Rows, ds.Columns = frame[:2]
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = "RGB" if color else "MONOCHROME2"
    if color:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    if multi_frame:
        ds.NumberOfFrames = len(pixels)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()
    if syntax is not None:
        ds.compress(syntax, generate_instance_uid=False)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def stored_frame(t, base=100, dtype="uint16", size=SIZE):
    """Stored values of frame `t`: `base + 7 t`, plus 0..4 across columns
    (so percentiles have something to find)."""
    columns = np.arange(size)[None, :] % 5
    return (base + 7 * t + columns + np.zeros((size, 1))).astype(dtype)


def dicom_linear(x, center, width):
    """DICOM's LINEAR VOI function to 0..255 (PS3.3 C.11.2.1.2.1)."""
    x = np.asarray(x, "float64")
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    inside = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, inside))


def write_series(folder, positions=2, phases=4, seed=0, keys=(
        "TriggerTime", "InstanceNumber"), slope=2.0, intercept=-50.0,
        window=(250.0, 400.0), **tags):
    """Single-frame files of `positions` x `phases`, under shuffled names
    with shuffled InstanceNumbers (unless InstanceNumber is the only key),
    positions written from the top down. Returns the stored frames,
    `[position][phase]`, in spatial and time order."""
    rng = np.random.default_rng(seed)
    cells = [(p, t) for p in range(positions) for t in range(phases)]
    names = rng.permutation(len(cells))
    numbers = rng.permutation(len(cells)) + 1
    stored = [[None] * phases for _ in range(positions)]
    for n, (p, t) in enumerate(cells):
        stored[p][t] = stored_frame(t, base=100 + 60 * p)
        values = {"TriggerTime": 35.0 * t, "TemporalPositionIdentifier": t + 1,
                  "InstanceNumber": int(numbers[n])}
        if keys == ("InstanceNumber",):
            values["InstanceNumber"] = p * phases + t + 1
        write_dicom(
            os.path.join(folder, f"IM{names[n]:04d}.dcm"), stored[p][t],
            ImagePositionPatient=[0.0, 0.0, 30.0 - 6.0 * p],
            ImageOrientationPatient=[1, 0, 0, 0, -1, 0],  # normal: -z
            RescaleSlope=slope, RescaleIntercept=intercept,
            WindowCenter=window[0], WindowWidth=window[1],
            **{k: values[k] for k in keys}, **tags,
        )
    return stored


def index(root, **kwargs):
    return index_clip_directory(str(root), verbose=False, **kwargs)


def encoder_available(syntax):
    return get_encoder(syntax).is_available


# --- order and values -------------------------------------------------------


def test_series_orders_by_position_then_trigger_time_not_by_names(tmp_path):
    stored = write_series(tmp_path / "a" / "patient1")
    sources = index(tmp_path).sources
    assert [(s.kind, s.index, s.length) for s in sources] == [
        ("dicom", 0, 4), ("dicom", 1, 4)]
    assert sources[0].path == str(tmp_path / "a" / "patient1")
    for source, frames in zip(sources, stored):
        clip = read_clip(source)
        expected = dicom_linear(2.0 * np.stack(frames) - 50.0, 250.0, 400.0)
        assert clip.shape == (4, SIZE, SIZE, 1) and clip.dtype == np.float32
        np.testing.assert_allclose(clip[..., 0], expected, atol=1e-3)
    sampled = read_clip(sources[1], indices=[3, 0, 3])
    np.testing.assert_array_equal(sampled, read_clip(sources[1])[[3, 0, 3]])


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sampled_from([
    ("TriggerTime",), ("TemporalPositionIdentifier",), ("InstanceNumber",),
    ("TriggerTime", "InstanceNumber"),
    ("TemporalPositionIdentifier", "InstanceNumber"),
]), seed=st.integers(0, 2**16))
def test_time_order_never_depends_on_file_names(tmp_path_factory, keys,
                                                seed):
    """Whatever the names, and whichever keys the frames carry, frames come
    in the order the first key on every frame gives."""
    root = tmp_path_factory.mktemp("order")
    write_series(root / "a" / "s", positions=1, phases=4, seed=seed,
                 keys=keys, slope=1.0, intercept=0.0, window=(120, 100))
    (source,) = index(root).sources
    assert np.round(_stored_phases(source)).tolist() == [0, 1, 2, 3]


def _stored_phases(source):
    """The phase each frame shows, read back through a fixed window that
    maps stored value v to v - 100 + 127.5 (LINEAR_EXACT, width 255)."""
    source.intensity = {"center": 100.0, "width": 255.0}
    clip = read_clip(source)
    return (clip[:, :, 0, 0].mean(axis=1) - 127.5) / 7


def test_multi_frame_file_frames_in_file_order_rescaled_and_windowed(
    tmp_path
):
    frames = np.stack([stored_frame(t, base=-190, dtype="int16")
                       for t in range(5)])
    write_dicom(tmp_path / "a" / "cine.dcm", frames, multi_frame=True,
                RescaleSlope=1.5, RescaleIntercept=20.0,
                WindowCenter=-250.0, WindowWidth=80.0)
    (source,) = index(tmp_path).sources
    assert (source.length, source.frame_paths, source.index) == (5, None,
                                                                 None)
    clip = read_clip(source, indices=[4, 1, 1])
    expected = dicom_linear(1.5 * frames[[4, 1, 1]] + 20.0, -250.0, 80.0)
    np.testing.assert_allclose(clip[..., 0], expected, atol=1e-3)
    assert 0 < clip[1].mean() < clip[0].mean() < 255  # not saturated


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless],
                         ids=["rle", "jpeg2000"])
def test_compressed_files_give_the_uncompressed_clip(tmp_path, syntax):
    if not encoder_available(syntax):
        pytest.skip(f"no installed encoder writes {syntax.name}")
    frames = np.stack([stored_frame(t, base=500) for t in range(3)])
    tags = dict(multi_frame=True, WindowCenter=520.0, WindowWidth=60.0)
    write_dicom(tmp_path / "a" / "plain.dcm", frames, **tags)
    write_dicom(tmp_path / "b" / "packed.dcm", frames, syntax=syntax,
                SeriesInstanceUID=uid(1, 2), **tags)
    plain, packed = index(tmp_path).sources
    assert pydicom.dcmread(packed.path).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(read_clip(packed), read_clip(plain))


def test_ybr_full_comes_out_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3),
                                            dtype="uint8")
    ybr = convert_color_space(rgb.copy(), "RGB", "YBR_FULL", per_frame=True)
    assert np.abs(ybr.astype(int) - rgb).max() > 50  # not the same
    write_dicom(tmp_path / "a" / "color.dcm", ybr, multi_frame=True,
                PhotometricInterpretation="YBR_FULL")
    (source,) = index(tmp_path).sources
    assert source.channels == 3
    clip = read_clip(source)
    assert np.abs(clip - rgb).max() <= 1.0  # YCbCr rounding
    gray = read_clip(source, channels=1)
    assert gray.shape == (3, SIZE, SIZE, 1)


def copy_sample(name, folder):
    """pydicom's sample file `name`, copied (read only) into `folder`."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(get_testdata_file(name), "rb") as source:
        with open(path, "wb") as copy:
            copy.write(source.read())
    return path


def test_shipped_ybr_full_422_jpeg_cine(tmp_path):
    """pydicom's sample: 30 frames of JPEG in YBR_FULL_422."""
    path = copy_sample("examples_ybr_color.dcm", tmp_path / "a")
    (source,) = index(tmp_path).sources
    assert (source.length, source.channels) == (30, 3)
    clip = read_clip(source, indices=[29, 0])
    reference = pydicom.dcmread(path).pixel_array[[29, 0]]  # RGB
    np.testing.assert_array_equal(clip, reference.astype("float32"))


@pytest.mark.parametrize("name", [
    "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
])
def test_shipped_compressed_samples_agree_with_the_plain_one(name):
    plain = load_dicom(get_testdata_file("MR_small.dcm"), verbose=0)
    packed = load_dicom(get_testdata_file(name), verbose=0)
    np.testing.assert_array_equal(packed.x, plain.x)
    stored = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    np.testing.assert_allclose(
        plain.x[0, 0, ..., 0], dicom_linear(stored, 600, 1600), atol=1e-3
    )
    assert plain.groups == ["4MR1"]


# --- intensity ---------------------------------------------------------------


def test_intensity_options_and_monochrome1(tmp_path):
    frames = np.stack([stored_frame(t, base=1000) for t in range(4)])
    frames[0, 0, 0] = 60000  # an outlier
    write_dicom(tmp_path / "a" / "1_plain.dcm", frames, multi_frame=True)
    write_dicom(tmp_path / "a" / "2_inverted.dcm", frames, multi_frame=True,
                PhotometricInterpretation="MONOCHROME1",
                SeriesInstanceUID=uid(1, 2))
    plain, inverted = index(tmp_path).sources
    values = frames.astype("float64")
    low, high = np.percentile(values, (0.5, 99.5))
    expected = np.clip((values - low) / (high - low) * 255, 0, 255)
    # "window" without a window in the file: the percentiles.
    np.testing.assert_allclose(read_clip(plain)[..., 0], expected,
                               atol=1e-2)
    np.testing.assert_allclose(read_clip(inverted)[..., 0], 255 - expected,
                               atol=1e-2)
    for intensity, (lo, hi) in [
        ("minmax", (values.min(), values.max())),
        ((5, 95), np.percentile(values, (5, 95))),
        ({"center": 1020, "width": 40}, (1000, 1040)),
    ]:
        plain.intensity = intensity
        np.testing.assert_allclose(
            read_clip(plain)[..., 0],
            np.clip((values - lo) / (hi - lo) * 255, 0, 255), atol=1e-2)
    np.testing.assert_allclose(
        scale_intensity(values, "percentiles"), expected, atol=1e-2)


def test_enhanced_multi_frame_functional_groups(tmp_path):
    """Rescale per frame and the window shared, in functional groups."""
    frames = np.stack([stored_frame(t, base=100) for t in range(3)])
    item = Dataset()
    item.PixelValueTransformationSequence = [Dataset()]
    item.FrameVOILUTSequence = [Dataset()]
    item.FrameVOILUTSequence[0].WindowCenter = 150.0
    item.FrameVOILUTSequence[0].WindowWidth = 100.0
    per_frame = []
    for t in range(3):
        frame = Dataset()
        frame.PixelValueTransformationSequence = [Dataset()]
        frame.PixelValueTransformationSequence[0].RescaleSlope = 1.0
        frame.PixelValueTransformationSequence[0].RescaleIntercept = 10.0 * t
        per_frame.append(frame)
    write_dicom(tmp_path / "a" / "enhanced.dcm", frames, multi_frame=True,
                SharedFunctionalGroupsSequence=[item],
                PerFrameFunctionalGroupsSequence=per_frame)
    clip = read_clip(index(tmp_path).sources[0])
    rescaled = frames + 10.0 * np.arange(3)[:, None, None]
    np.testing.assert_allclose(clip[..., 0], dicom_linear(rescaled, 150, 100),
                               atol=1e-3)


# --- folders, groups, the dataset --------------------------------------------


def study_tree(root, patients=3, classes=("healthy", "sick")):
    """Each patient: a cine series of 2 positions, and a multi-frame file,
    both of one study; patient ids shared by nothing else."""
    for c, name in enumerate(classes):
        for p in range(patients):
            patient = f"{name[0].upper()}{p}"
            folder = root / name / f"patient_{p}"
            study = uid(2, c, p)
            write_series(folder / "cine", seed=p, PatientID=patient,
                         StudyInstanceUID=study,
                         SeriesInstanceUID=uid(2, c, p, 1))
            write_dicom(folder / "echo.dcm",
                        np.stack([stored_frame(t) for t in range(3)]),
                        multi_frame=True, PatientID=patient,
                        StudyInstanceUID=study,
                        SeriesInstanceUID=uid(2, c, p, 2))
    return root


def test_dataset_streams_studies_and_never_splits_a_patient(tmp_path):
    study_tree(tmp_path)
    listed = index(tmp_path)
    assert len(listed.sources) == 18  # 2 classes x 3 patients x 3 clips
    assert {s.kind for s in listed.sources} == {"dicom"}
    assert {s.group for s in listed.sources} == {
        "H0", "H1", "H2", "S0", "S1", "S2"}
    for seed in range(6):
        train, val = split_clip_sources(listed.sources, 0.34, seed)
        assert not {s.patient for s in train} & {s.patient for s in val}
        assert {s.label for s in val} == {0, 1}
    train, val = clip_dataset_from_directory(
        str(tmp_path), image_size=SIZE, frames=3, batch_size=4,
        validation_split=0.34, subset="both", seed=3, verbose=False)
    assert not ({s.group for s in train.clip_sources}
                & {s.group for s in val.clip_sources})
    clips, labels = next(iter(val))
    assert clips.shape == (4, 3, SIZE, SIZE, 3)
    assert float(tf.reduce_max(clips)) <= 255.0


def test_groups_argument_overrides_patient_ids(tmp_path):
    study_tree(tmp_path, patients=2)
    sources = index(tmp_path, groups=r"patient_(\d)").sources
    assert sorted({s.group for s in sources}) == ["0", "1"]


def test_folder_rules(tmp_path):
    """Two series in one folder: a clip each; extensionless DICOM files
    found by their marker; DICOMDIR passed over; a 3D series (one frame a
    position) is one clip through space; frame images and DICOM do not
    mix."""
    folder = tmp_path / "a" / "mixed"
    write_series(folder, positions=1, phases=3, seed=1)
    write_dicom(folder / "IM_OTHER", stored_frame(0), InstanceNumber=1,
                SeriesInstanceUID=uid(9, 9))
    (folder / "DICOMDIR").write_bytes(b"an index")
    for z in range(4):
        write_dicom(tmp_path / "a" / "volume" / f"{z}", stored_frame(z),
                    SeriesInstanceUID=uid(7), SliceLocation=3.0 * (3 - z))
    sources = index(tmp_path).sources
    assert [(os.path.basename(s.path), s.length, s.index) for s in sources] \
        == [("mixed", 3, 0), ("IM_OTHER", 1, 0), ("volume", 4, None)]
    volume = _stored_phases(sources[2])
    assert volume.round().tolist() == [3, 2, 1, 0]  # by SliceLocation
    write_dicom(tmp_path / "b" / "frames" / "x.dcm", stored_frame(0))
    (tmp_path / "b" / "frames" / "f.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"frames: holds 1 file\(s\) that "
                                         r"are not frame images.*x\.dcm"):
        index(tmp_path)


def test_slices_pick_slice_positions(tmp_path):
    write_series(tmp_path / "a" / "s", positions=3, phases=2)
    assert [s.index for s in index(tmp_path, slices="middle").sources] == [1]
    assert [s.index for s in index(tmp_path, slices=[-1, 0]).sources] == [
        2, 0]
    assert [s.index for s in index(tmp_path, slices=slice(1, None)).sources
            ] == [1, 2]


def test_load_dicom_labels_groups_and_size(tmp_path):
    write_series(tmp_path / "p1", positions=2, phases=3, PatientID="A")
    write_dicom(tmp_path / "p2.dcm",
                np.stack([stored_frame(t) for t in range(3)]),
                multi_frame=True, PatientID="B",
                SeriesInstanceUID=uid(3))
    loaded = load_dicom([tmp_path / "p1", tmp_path / "p2.dcm"],
                        labels=[0, 1], verbose=0, channels=3)
    assert loaded.x.shape == (3, 3, SIZE, SIZE, 3)
    assert loaded.y.tolist() == [0, 0, 1] and loaded.groups == ["A", "A", "B"]
    assert loaded.skipped == []


def test_without_pydicom_the_error_names_the_extra(tmp_path, monkeypatch):
    write_dicom(tmp_path / "a" / "x.dcm", stored_frame(0))
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError,
                       match=r'pip install "keras_vgg4d\[dicom\]"'):
        index(tmp_path)
    with pytest.raises(ImportError, match=r"keras_vgg4d\[dicom\]"):
        load_dicom(tmp_path / "a" / "x.dcm", verbose=0)


# --- bad input -------------------------------------------------------------


def no_order(root):
    for n in range(3):
        write_dicom(root / "a" / "s" / f"{n}.dcm", stored_frame(n))
    return root


def duplicate_frames(root):
    for n in range(2):
        write_dicom(root / "a" / "s" / f"{n}.dcm", stored_frame(n),
                    TriggerTime=40.0, InstanceNumber=7)
    return root


def two_sizes(root):
    write_dicom(root / "a" / "s" / "small.dcm", stored_frame(0),
                InstanceNumber=1)
    write_dicom(root / "a" / "s" / "large.dcm", stored_frame(1, size=48),
                InstanceNumber=2)
    return root


def one_series_in_two_classes(root):
    write_dicom(root / "a" / "s" / "1.dcm", stored_frame(0),
                InstanceNumber=1)
    write_dicom(root / "b" / "s" / "2.dcm", stored_frame(1),
                InstanceNumber=2)
    return root


def rle_file(root):
    write_dicom(root / "a" / "packed.dcm",
                np.stack([stored_frame(t) for t in range(2)]),
                multi_frame=True, syntax=RLELossless)
    return root


def without_plugins(make_tree):
    def call(root):
        make_tree(root)
        with mock.patch.object(dicom_module, "_decoder_plugins",
                               lambda syntax: ()):
            return index(root)
    return call


def video_in_dicom(root):
    write_dicom(root / "a" / "video.dcm", stored_frame(0))
    ds = pydicom.dcmread(root / "a" / "video.dcm")
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" * 16])
    ds["PixelData"].VR = "OB"
    ds.save_as(root / "a" / "video.dcm", enforce_file_format=True)
    return root


def not_dicom(root):
    write_dicom(root / "a" / "good.dcm", stored_frame(0),
                SeriesInstanceUID=uid(1, 3))
    (root / "a" / "notes.dcm").write_text("not DICOM at all\n" * 20)
    return root


def truncated(root, syntax=None):
    write_dicom(root / "a" / "good.dcm", stored_frame(0),
                SeriesInstanceUID=uid(1, 3))
    path = write_dicom(root / "a" / "cut.dcm",
                       np.stack([stored_frame(t) for t in range(4)]),
                       multi_frame=True, syntax=syntax,
                       SeriesInstanceUID=uid(1, 2))
    data = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write(data[: len(data) * 6 // 10])
    return root


def shipped_truncated(root):
    copy_sample("MR_truncated.dcm", root / "a")
    write_dicom(root / "a" / "good.dcm", stored_frame(0))
    return root


def no_pixel_data(root):
    path = write_dicom(root / "a" / "report.dcm", stored_frame(0))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    return root


def listing(make_tree, **kwargs):
    return lambda p: index(make_tree(p), **kwargs)


def series(root):
    write_series(root / "a" / "s", positions=2, phases=2)
    return root


CASES = [
    ("series/no_order_in_time", listing(no_order),
     ValueError, r"s: series .*3 frames do not all carry one of "
                 r"TriggerTime.*order in time is unknown: 0\.dcm"),
    ("series/duplicate_frames", listing(duplicate_frames),
     ValueError, r"share TriggerTime 40, InstanceNumber 7: 0\.dcm and "
                 r"1\.dcm"),
    ("series/two_frame_sizes", listing(two_sizes),
     ValueError, r"2 sizes .*48x48x1: large\.dcm; 32x32x1: small\.dcm"),
    ("series/in_two_classes", listing(one_series_in_two_classes),
     ValueError, r"different labels \[0, 1\]"),
    ("file/compressed_without_plugin", without_plugins(rle_file),
     ValueError, r"packed\.dcm: is compressed as RLE Lossless "
                 r"\(1\.2\.840\.10008\.1\.2\.5\).*pip install pylibjpeg "
                 r"pylibjpeg-rle.*keras_vgg4d\[dicom\]"),
    ("file/video_transfer_syntax", listing(video_in_dicom),
     ValueError, r"video\.dcm: is in transfer syntax MPEG-4 AVC/H\.264.*"
                 r"does not decode.*video"),
    ("file/not_dicom", listing(not_dicom),
     ValueError, r"notes\.dcm: is not a DICOM file"),
    ("file/truncated", listing(truncated),
     ValueError, r"cut\.dcm: is truncated: its pixel data ends at byte"),
    ("file/truncated_compressed", listing(
        lambda p: truncated(p, RLELossless)),
     ValueError, r"cut\.dcm: (is truncated|holds no pixel data: a "
                 r"truncated file)"),
    ("file/shipped_truncated", listing(shipped_truncated),
     ValueError, r"MR_truncated\.dcm: is truncated"),
    ("file/no_pixel_data", listing(no_pixel_data),
     ValueError, r"report\.dcm: holds no pixel data"),
    ("arguments/intensity", listing(series, intensity="auto"),
     ValueError, r"index_clip_directory expects `intensity`.*"
                 r"intensity='auto'"),
    ("arguments/percentiles", listing(series, intensity=(99, 1)),
     ValueError, r"intensity=\(99, 1\)"),
    ("arguments/slices", listing(series, slices="first"),
     ValueError, r"`slices`.*slices='first'"),
    ("arguments/slice_out_of_range", listing(series, slices=5),
     ValueError, r"s: has 2 slice\(s\); slices=5 does not fit"),
    ("load_dicom/missing", lambda p: load_dicom(p / "nowhere.dcm"),
     FileNotFoundError, r"nowhere\.dcm"),
    ("load_dicom/no_dicom_in_folder", lambda p: load_dicom(p),
     ValueError, r"found no DICOM files in"),
    ("load_dicom/lengths_differ", lambda p: load_dicom(
        [write_dicom(p / "a.dcm", np.zeros((3, SIZE, SIZE), "uint8"),
                     multi_frame=True),
         write_dicom(p / "b.dcm", np.zeros((4, SIZE, SIZE), "uint8"),
                     multi_frame=True, SeriesInstanceUID=uid(5))],
        verbose=0),
     ValueError, r"b\.dcm' gives a clip .*\(4, 32, 32, 1\).*\(3, 32, 32, 1\)"
                 r".*share their number of frames"),
    ("load_dicom/channels", lambda p: load_dicom(
        write_dicom(p / "a.dcm", stored_frame(0)), channels=4),
     ValueError, r"channels=4"),
    ("load_dicom/labels", lambda p: load_dicom(
        write_dicom(p / "a.dcm", stored_frame(0)), labels=[0, 1]),
     ValueError, r"one label a path: 1 path\(s\) but 2 label\(s\)"),
    ("scale_intensity/window", lambda p: scale_intensity(
        np.ones(4), "window", window=400),
     ValueError, r"window=400"),
    ("scale_intensity/nan", lambda p: scale_intensity(
        np.array([1.0, np.nan])),
     ValueError, r"NaN"),
]


# pydicom warns, as well, about a file it reads only in part.
@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
@pytest.mark.parametrize(
    "call, error, pattern", [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_fails_early_with_a_clear_message(
    call, error, pattern, tmp_path
):
    with pytest.raises(error) as raised:
        call(tmp_path)
    assert raised.type is error
    assert re.search(pattern, str(raised.value), re.S), str(raised.value)


def test_skip_bad_leaves_out_named_files_and_series(tmp_path):
    for make_tree in (no_order, not_dicom, lambda r: truncated(r)):
        make_tree(tmp_path)
    with pytest.warns(UserWarning) as caught:
        listed = index(tmp_path, skip_bad=True)
    (message,) = [str(w.message) for w in caught
                  if "skipped" in str(w.message)]
    for name in ("notes.dcm", "cut.dcm", "order in time is unknown"):
        assert name in message
    assert [os.path.basename(s.path) for s in listed.sources] == ["good.dcm"]
    assert sorted(os.path.basename(p) for p, _ in listed.skipped) == [
        "cut.dcm", "notes.dcm", "s"]


def test_a_file_failing_inside_the_pipeline_names_itself(tmp_path):
    for n in range(2):
        write_dicom(tmp_path / "a" / f"{n}.dcm",
                    np.stack([stored_frame(t) for t in range(3)]),
                    multi_frame=True, SeriesInstanceUID=uid(4, n))
    data = clip_dataset_from_directory(
        str(tmp_path), image_size=SIZE, frames=2, batch_size=2,
        shuffle=False, verbose=False)
    broken = data.file_paths[1]
    with open(broken, "wb") as file:  # changed after listing
        file.write(b"\x00" * 300)
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        list(data)
    message = str(raised.value)
    assert re.search(re.escape(repr(broken)) + r".*(DICOM|DICM)", message), (
        message)
    assert "skip_bad=True" in message


def test_skip_bad_leaves_out_a_file_failing_inside_the_pipeline(tmp_path):
    for n in range(2):
        write_dicom(tmp_path / "a" / f"{n}.dcm",
                    np.stack([stored_frame(t) for t in range(3)]),
                    multi_frame=True, SeriesInstanceUID=uid(4, n))
    data = clip_dataset_from_directory(
        str(tmp_path), image_size=SIZE, frames=2, batch_size=None,
        shuffle=False, verbose=False, skip_bad=True)
    with open(data.file_paths[0], "wb") as file:  # changed after listing
        file.write(b"\x00" * 300)
    with pytest.warns(UserWarning, match=r"skips a clip.*0\.dcm"):
        assert len(list(data)) == 1


def test_a_series_window_is_its_first_frame_s_whatever_is_sampled(tmp_path):
    """Scanners window each image; a clip keeps one window, its first
    frame's, so the same frame looks the same however it is sampled."""
    for t in range(3):
        write_dicom(tmp_path / "a" / "s" / f"{t}.dcm", stored_frame(t),
                    InstanceNumber=t + 1, WindowCenter=110.0 + 50 * t,
                    WindowWidth=40.0)
    (source,) = index(tmp_path).sources
    last = read_clip(source, indices=[2])  # read first: fills the cache
    expected = dicom_linear(stored_frame(2), 110.0, 40.0)
    np.testing.assert_allclose(last[0, ..., 0], expected, atol=1e-3)
    np.testing.assert_array_equal(read_clip(source)[2], last[0])
