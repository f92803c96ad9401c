"""Builtin data sets: materialised from installed packages, deterministic, never rewritten needlessly."""

import csv

from keel.data import datasets


def read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_penguins_missing_values_become_empty_fields(tmp_path):
    record = datasets.materialise("penguins", tmp_path / "penguins")
    rows = read(record["file"])
    assert rows[0] == [
        "species",
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]
    assert record["rows"] == len(rows) - 1 == 344
    assert not any("NA" in row for row in rows)
    assert sum(1 for row in rows[1:] if row[6] == "") == 11  # sex is missing for 11 penguins


def test_taxi_label_is_tip_over_20_percent_of_fare(tmp_path):
    record = datasets.materialise("taxi", tmp_path / "taxi")
    rows = read(record["file"])
    header = rows[0]
    assert "tips" not in header and header[-1] == "big_tipper"
    assert record["rows"] == 15002
    assert {row[-1] for row in rows[1:]} == {"0", "1"}
    share = sum(row[-1] == "1" for row in rows[1:]) / record["rows"]
    assert 0.15 < share < 0.35  # 22% in this file


def test_digits_are_64_float_pixels_and_a_digit_label(tmp_path):
    record = datasets.materialise("digits", tmp_path / "digits")
    rows = read(record["file"])
    assert rows[0] == [f"pixel_{i:02d}" for i in range(64)] + ["digit"]
    assert record["rows"] == len(rows) - 1 == 1797
    assert {row[-1] for row in rows[1:]} == {str(d) for d in range(10)}
    pixels = {float(v) for row in rows[1:] for v in row[:64]}
    assert min(pixels) == 0.0 and max(pixels) == 16.0 and all("." in v for v in rows[1][:64])


def test_breast_cancer_has_30_named_measurements_and_a_diagnosis(tmp_path):
    record = datasets.materialise("breast_cancer", tmp_path / "breast_cancer")
    rows = read(record["file"])
    assert rows[0][0] == "mean_radius" and rows[0][-2] == "worst_fractal_dimension" and rows[0][-1] == "diagnosis"
    assert len(rows[0]) == 31 and record["rows"] == len(rows) - 1 == 569
    diagnoses = [row[-1] for row in rows[1:]]
    assert (diagnoses.count("malignant"), diagnoses.count("benign")) == (212, 357)  # as scikit-learn counts them
    assert rows[1][:2] == ["17.99", "10.38"] and rows[1][-1] == "malignant"


def test_unchanged_data_is_not_rewritten(tmp_path):
    first = datasets.materialise("penguins", tmp_path / "penguins")
    mtime = (tmp_path / "penguins" / "data.csv").stat().st_mtime_ns
    second = datasets.materialise("penguins", tmp_path / "penguins")
    assert second["sha256"] == first["sha256"] and len(first["sha256"]) == 64
    assert (tmp_path / "penguins" / "data.csv").stat().st_mtime_ns == mtime  # ExampleGen's cache depends on it
    assert [p.name for p in (tmp_path / "penguins").iterdir()] == ["data.csv"]
