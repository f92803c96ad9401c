"""signature.json: the inputs a phone app fills, by dtype, and the Kotlin and Swift calls naming them."""

from keel.export.mobile import MobileSignature


def test_numbers_text_and_pictures_each_have_their_input():
    signature = MobileSignature(
        ["bill_length_mm", "trip_start_hour"],
        {"bill_length_mm": "float32", "trip_start_hour": "float64", "island": "string", "photo": "string"},
        ["Adelie", "Gentoo"],
        text_columns=["island"],
        vocabularies={"trip_start_hour": ["9", "14"], "island": ["Biscoe", "Dream"]},
        images={"photo": [8, 8, 1]},
    )
    written = signature.to_json()
    inputs = [(i["name"], i["dtype"], i["shape"]) for i in written["inputs"]]
    assert inputs == [("features", "float32", [-1, 2]), ("island", "string", [-1]), ("photo", "uint8", [-1, 8, 8, 1])]
    assert "trip_start_hour are categories given as their integer values" in written["inputs"][0]["note"]
    kotlin, swift = written["usage"]["kotlin"], written["usage"]["swift"]
    assert 'mapOf("features" to features, "island" to island, "photo" to photo)' in kotlin
    assert "FloatArray(2)" in kotlin and "ByteBuffer.allocateDirect(64)" in kotlin
    assert 'toInputNamed: "island"' in swift and 'toInputNamed: "photo"' in swift


def test_a_regression_signature_names_its_label_and_one_number_out():
    written = MobileSignature(["x"], {"x": "float32"}, [], task="regression", label="fare").to_json()
    assert written["label"] == "fare" and written["outputs"][0]["name"] == "predictions"
    assert "val output = FloatArray(1)" in written["usage"]["kotlin"]
