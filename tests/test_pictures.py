"""A folder of pictures end to end: digits as PNG files -> pipeline -> TF Serving REST with b64 -> LiteRT on pixels."""

import base64
import glob
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keel.export.examples import read_split

from helpers import REPO, keel, node_states, pushed_versions, write_spec
from serving_helpers import Server


class PictureRun:
    """One digits_images run, trained briefly, with a gated float32 + int8 export."""

    def __init__(self, root: Path):
        self.root, self.workdir = root, root / "work"
        overrides = {"train.steps": 200, "export.lite.variants": ["float32", "int8"]}
        self.spec = write_spec(root / "digits_images.toml", REPO / "pipelines" / "digits_images.toml", overrides)
        self.run = keel("run", self.spec, "--workdir", self.workdir)
        self.version = Path(pushed_versions(self.workdir, "digits_images")[-1]) if self.run.returncode == 0 else None


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> PictureRun:
    return PictureRun(tmp_path_factory.mktemp("pictures"))


def eval_pictures(workdir: Path) -> list[tf.train.Example]:
    uri = sorted(glob.glob(str(workdir / "pipeline" / "ImportExampleGen" / "examples" / "*")))[-1]
    return [tf.train.Example.FromString(r) for r in read_split(uri, "eval")]


def test_the_picture_pipeline_runs_end_to_end(pictures):
    assert pictures.run.returncode == 0, pictures.run.stderr[-3000:]
    out = pictures.run.stdout
    assert "1797 pictures as tf.Example" in out
    assert set(node_states(pictures.workdir).values()) == {"COMPLETE"}
    assert "blessed: yes" in out
    folder = pictures.workdir / "data" / "digits_images"
    assert sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]


def test_the_litert_model_classifies_decoded_pixels_as_the_savedmodel_does(pictures):
    lite = pictures.version / "lite"
    signature = json.loads((lite / "signature.json").read_text())
    (spec,) = signature["inputs"]
    assert (spec["name"], spec["dtype"], spec["shape"]) == ("image", "uint8", [-1, 8, 8, 1])
    report = json.loads((lite / "report.json").read_text())
    chosen = next(v for v in report["variants"] if v["name"] == report["chosen"])
    assert chosen["passed"] and chosen["agreement"] >= 0.99, chosen

    examples = eval_pictures(pictures.workdir)
    encoded = [e.features.feature["image"].bytes_list.value[0] for e in examples]
    runner = Interpreter(model_path=str(lite / "model.tflite")).get_signature_runner("serving_mobile")
    # What a camera pipeline hands the model: decoded uint8 pixels, one picture per call.
    on_phone = np.concatenate(
        [runner(image=tf.io.decode_png(png, channels=1).numpy()[np.newaxis])["probabilities"] for png in encoded]
    )
    model = tf.saved_model.load(str(pictures.version))
    served = model.signatures["serving_default"](examples=tf.constant([e.SerializeToString() for e in examples]))
    agreement = np.mean(on_phone.argmax(-1) == served["probabilities"].numpy().argmax(-1))
    assert agreement >= chosen["agreement"] - 1e-9, agreement


def test_keel_serve_answers_a_b64_png_over_rest(pictures, tmp_path):
    examples = eval_pictures(pictures.workdir)[:5]
    server = Server(pictures.workdir, tmp_path / "logs")
    try:
        instances = [
            {"image": {"b64": base64.b64encode(e.features.feature["image"].bytes_list.value[0]).decode()}}
            for e in examples
        ]
        response = server.predict({"instances": instances}, path="/v1/models/digits_images:predict")
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        classes = [p["classes"] for p in predictions]
        assert len(classes) == 5 and all(c in [str(d) for d in range(10)] for c in classes)
        truth = [e.features.feature["digit"].bytes_list.value[0].decode() for e in examples]
        assert sum(c == t for c, t in zip(classes, truth, strict=True)) >= 4, (classes, truth)
    finally:
        server.stop()
