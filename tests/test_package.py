import importlib.metadata
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


def test_version_matches_the_installed_metadata():
    assert keras_vgg4d.__version__ == importlib.metadata.version("keras_vgg4d")


def test_public_names_are_exported():
    for name in keras_vgg4d.__all__:
        assert getattr(keras_vgg4d, name) is not None
    assert keras_vgg4d.data.demo_clips is not None
