import importlib.metadata
import os
import json
import subprocess
import sys
import textwrap

import keras_vgg4d

CHECK_IMPORT = textwrap.dedent(
    """
    import json, socket, sys

    def refuse(*args, **kwargs):
        raise AssertionError("importing keras_vgg4d touched the network")

    socket.socket.connect = refuse
    socket.create_connection = refuse

    import keras_vgg4d
    from keras_vgg4d import VGG4DClassifier  # registers the classes
    import keras

    print(json.dumps({
        "heavy": sorted(m for m in ("keras_tuner", "nibabel")
                        if m in sys.modules),
        "registered": keras.saving.get_registered_object(
            "keras_vgg4d>VGG4DClassifier") is VGG4DClassifier,
        "lazy": keras_vgg4d.VGG4DHyperModel.__name__,
        "explain_before": "keras_vgg4d.explain" in sys.modules,
        "explain": keras_vgg4d.explain.__name__,
    }))
    """
)


def test_import_is_light_and_offline():
    result = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORT],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["registered"] is True
    assert report["lazy"] == "VGG4DHyperModel"
    # `keras_vgg4d.explain` loads on first use, without an import of its own.
    assert report["explain_before"] is False
    assert report["explain"] == "keras_vgg4d.explain"


def test_version_matches_the_installed_metadata():
    assert keras_vgg4d.__version__ == importlib.metadata.version("keras_vgg4d")


def test_public_names_are_exported():
    for name in keras_vgg4d.__all__:
        assert getattr(keras_vgg4d, name) is not None
    assert keras_vgg4d.data.demo_clips is not None


def test_nothing_but_keras_vgg4d_is_installed_at_the_top_level(tmp_path):
    """`tuning/` is installed as `keras_vgg4d.tuning`, never as `tuning`;
    beside the package, only the commands' front, `keras_vgg4d_cli`."""
    import tomllib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as file:
        project = tomllib.load(file)
    packages = project["tool"]["setuptools"]["packages"]
    assert all(p == "keras_vgg4d" or p.startswith("keras_vgg4d.")
               for p in packages)
    assert project["tool"]["setuptools"]["py-modules"] == ["keras_vgg4d_cli"]
    for target in project["project"]["scripts"].values():
        assert target.startswith("keras_vgg4d_cli:")
    # From a folder without the repository's `tuning/`, only the package's.
    probe = ("import importlib.util as u; print(u.find_spec('tuning') is None,"
             " u.find_spec('keras_vgg4d.tuning.search') is not None)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
    entry_points = importlib.metadata.entry_points(group="console_scripts")
    assert {e.value for e in entry_points if e.name == "vgg4d-tune"} == {
        "keras_vgg4d_cli:tune"}
