import sys

import nibabel as nib
import numpy as np
import pytest

from keras_vgg4d.data import load_nifti


def write_volume(path, shape=(32, 24, 5, 6), seed=0, volume=None):
    if volume is None:
        volume = np.random.default_rng(seed).uniform(-100, 900, shape)
    nib.save(nib.Nifti1Image(volume.astype("float32"), np.eye(4)), str(path))
    return volume.astype("float32")


def scaled(volume):
    return (volume - volume.min()) / (volume.max() - volume.min()) * 255


@pytest.mark.parametrize(
    "slice_axis, transpose",
    [(2, (2, 3, 0, 1)), (0, (0, 3, 1, 2)), (1, (1, 3, 0, 2))],
)
def test_slices_over_time(tmp_path, slice_axis, transpose):
    volume = write_volume(tmp_path / "cine.nii.gz")
    x, y = load_nifti(tmp_path / "cine.nii.gz", slice_axis=slice_axis,
                      verbose=0)
    expected = np.transpose(scaled(volume), transpose)[..., None]
    assert x.dtype == np.float32 and y is None
    assert x.shape == expected.shape
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-3)
    assert x.min() == 0.0 and x.max() == pytest.approx(255.0)


def test_clip_z_frame_t_is_volume_slice(tmp_path):
    volume = write_volume(tmp_path / "v.nii")
    x, _ = load_nifti(tmp_path / "v.nii", verbose=0)
    np.testing.assert_allclose(
        x[3, 4, :, :, 0], scaled(volume)[:, :, 3, 4], rtol=1e-4, atol=1e-3
    )


def test_percentiles_clip_outliers(tmp_path):
    volume = np.random.default_rng(0).uniform(0, 100, (32, 32, 2, 3))
    volume[0, 0, 0, 0] = 1e6  # one outlier voxel
    write_volume(tmp_path / "v.nii", volume=volume)
    plain, _ = load_nifti(tmp_path / "v.nii", verbose=0)
    robust, _ = load_nifti(tmp_path / "v.nii", clip_percentiles=(1, 99),
                           verbose=0)
    assert plain[..., 0].mean() < 1.0  # squashed by the outlier
    assert 100 < robust.mean() < 155
    assert robust.min() == 0.0 and robust.max() == 255.0


def test_labels_several_volumes_size_channels_and_slices(tmp_path):
    write_volume(tmp_path / "a.nii.gz", (32, 32, 4, 6), seed=1)
    write_volume(tmp_path / "b.nii.gz", (40, 36, 3, 6), seed=2)
    x, y = load_nifti(
        [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"],
        labels=[0, 1],
        size=32,
        channels=3,
        verbose=0,
    )
    assert x.shape == (7, 6, 32, 32, 3)
    assert y.dtype == np.int32 and y.tolist() == [0] * 4 + [1] * 3
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    assert 0.0 <= x.min() and x.max() <= 255.0
    x, _ = load_nifti(tmp_path / "a.nii.gz", slices=slice(1, 3), verbose=0)
    full, _ = load_nifti(tmp_path / "a.nii.gz", verbose=0)
    np.testing.assert_array_equal(x, full[1:3])
    x, _ = load_nifti(tmp_path / "a.nii.gz", slices=[3, 0], verbose=0)
    np.testing.assert_array_equal(x, full[[3, 0]])


def test_volumes_of_different_sizes_need_size(tmp_path):
    write_volume(tmp_path / "a.nii", (32, 32, 2, 4))
    write_volume(tmp_path / "b.nii", (40, 32, 2, 4))
    with pytest.raises(ValueError, match=r"b.nii.*Pass size="):
        load_nifti([tmp_path / "a.nii", tmp_path / "b.nii"], verbose=0)


def test_constant_volume_gives_zeros(tmp_path):
    write_volume(tmp_path / "flat.nii", volume=np.full((32, 32, 2, 3), 7.0))
    x, _ = load_nifti(tmp_path / "flat.nii", verbose=0)
    assert not x.any()


def test_bad_volumes_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nii"):
        load_nifti(tmp_path / "missing.nii", verbose=0)
    write_volume(tmp_path / "three_d.nii", volume=np.zeros((32, 32, 4)))
    with pytest.raises(ValueError, match=r"three_d.nii.*\(32, 32, 4\).*4D"):
        load_nifti(tmp_path / "three_d.nii", verbose=0)
    volume = np.zeros((32, 32, 2, 3))
    volume[1, 2, 1, 0] = np.nan
    write_volume(tmp_path / "nan.nii", volume=volume)
    with pytest.raises(ValueError, match=r"nan.nii.*1 NaN.*\[1, 2, 1, 0\]"):
        load_nifti(tmp_path / "nan.nii", verbose=0)
    (tmp_path / "junk.nii").write_bytes(b"not nifti at all")
    with pytest.raises(ValueError, match="Cannot read.*junk.nii"):
        load_nifti(tmp_path / "junk.nii", verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"slice_axis": 3}, "slice_axis"),
        ({"labels": [0, 1]}, "one label a volume"),
        ({"labels": -1}, "non-negative"),
        ({"channels": 0}, "channels"),
        ({"clip_percentiles": (99, 1)}, "clip_percentiles"),
        ({"slices": [7]}, "does not fit"),
        ({"slices": slice(5, 9)}, "keeps no slice"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    write_volume(tmp_path / "v.nii", (32, 32, 3, 4))
    with pytest.raises(ValueError, match=match):
        load_nifti(tmp_path / "v.nii", **{"verbose": 0, **kwargs})


def test_without_nibabel(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(ImportError, match=r"pip install keras_vgg4d\[nifti\]"):
        load_nifti(tmp_path / "v.nii", verbose=0)


def test_intensity_options_match_clip_percentiles_and_the_header_window(
    tmp_path
):
    volume = write_volume(tmp_path / "v.nii", (32, 32, 2, 3), seed=3)
    by_percentiles, _ = load_nifti(tmp_path / "v.nii",
                                   clip_percentiles=(2, 98), verbose=0)
    by_intensity, _ = load_nifti(tmp_path / "v.nii", intensity=(2, 98),
                                 verbose=0)
    np.testing.assert_array_equal(by_intensity, by_percentiles)
    image = nib.Nifti1Image(volume, np.eye(4))
    image.header["cal_min"], image.header["cal_max"] = 0.0, 400.0
    nib.save(image, str(tmp_path / "windowed.nii"))
    x, _ = load_nifti(tmp_path / "windowed.nii", intensity="window",
                      verbose=0)
    expected = np.clip(volume / 400.0 * 255, 0, 255)
    np.testing.assert_allclose(x[1, 2, :, :, 0], expected[:, :, 1, 2],
                               rtol=1e-4, atol=1e-3)
    fixed, _ = load_nifti(tmp_path / "v.nii", verbose=0,
                          intensity={"center": 400.0, "width": 1000.0})
    np.testing.assert_allclose(
        fixed[0, 0, :, :, 0],
        np.clip((volume[:, :, 0, 0] + 100) / 1000 * 255, 0, 255),
        rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match=r"either clip_percentiles or "
                                         r"intensity, not both"):
        load_nifti(tmp_path / "v.nii", clip_percentiles=(1, 99),
                   intensity="window", verbose=0)
    with pytest.raises(ValueError, match=r"intensity='auto'"):
        load_nifti(tmp_path / "v.nii", intensity="auto", verbose=0)


def test_the_nifti_clip_source_scales_like_load_nifti(tmp_path):
    from keras_vgg4d.data import index_clip_directory
    from keras_vgg4d.data import read_clip

    (tmp_path / "a").mkdir()
    write_volume(tmp_path / "a" / "v.nii.gz", (32, 32, 3, 4), seed=4)
    for intensity in (None, "percentiles", (10, 90)):
        sources = index_clip_directory(
            str(tmp_path), intensity=intensity, verbose=False,
            slices=[2, 0]).sources
        assert [s.index for s in sources] == [2, 0]
        x, _ = load_nifti(tmp_path / "a" / "v.nii.gz", verbose=0,
                          intensity=intensity or "minmax")
        np.testing.assert_allclose(read_clip(sources[0]), x[2], atol=1e-3)
