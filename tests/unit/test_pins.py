"""plugins/module_utils/pins.py: the KEY=VALUE format of scripts/versions.env and the real pin file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonfil.collection import module_utils

pins = module_utils("pins")
ROOT = Path(__file__).resolve().parents[2]


def test_parse_comments_blank_lines_quotes_and_expansion():
    text = "\n".join(
        [
            "# The one pin file.",
            "",
            "   # an indented comment",
            "TRITON_RELEASE=26.02",
            'TRITON_IMAGE_REPOSITORY="nvcr.io/nvidia/tritonserver"',
            "TRITON_IMAGE_TAG='${TRITON_RELEASE}-py3'",
            "TRITON_IMAGE=${TRITON_IMAGE_REPOSITORY}:${TRITON_IMAGE_TAG}",
            "  HELM_VERSION = v3.22.0  ",
            "EMPTY=",
            'QUOTED_EMPTY=""',
            "HALF_QUOTED=\"v1'",
            "WITH_EQUALS=a=b",
            "NOT_A_REF=$TRITON_RELEASE",
        ]
    )
    assert pins.parse(text) == {
        "TRITON_RELEASE": "26.02",
        "TRITON_IMAGE_REPOSITORY": "nvcr.io/nvidia/tritonserver",
        "TRITON_IMAGE_TAG": "26.02-py3",
        "TRITON_IMAGE": "nvcr.io/nvidia/tritonserver:26.02-py3",
        "HELM_VERSION": "v3.22.0",
        "EMPTY": "",
        "QUOTED_EMPTY": "",
        "HALF_QUOTED": "\"v1'",
        "WITH_EQUALS": "a=b",
        "NOT_A_REF": "$TRITON_RELEASE",
    }


def test_parse_later_line_overrides_and_expands_the_earlier_value():
    assert pins.parse("A=1\nB=${A}\nA=2\nC=${A}${B}") == {"A": "2", "B": "1", "C": "21"}


def test_parse_empty():
    assert pins.parse("") == {}
    assert pins.parse("# only\n\n# comments\n") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "A=1\n# c\nthis is not a pin\n",
            "scripts/versions.env line 3: expected KEY=VALUE, got 'this is not a pin'",
        ),
        ("A=1\n=2\n", "scripts/versions.env line 2: expected KEY=VALUE, got '=2'"),
        ("1A=x\n", "scripts/versions.env line 1: expected KEY=VALUE, got '1A=x'"),
        ("A=1\n  export B=2\n", "scripts/versions.env line 2: expected KEY=VALUE, got '  export B=2'"),
        ("KEY-NAME=1\n", "scripts/versions.env line 1: expected KEY=VALUE, got 'KEY-NAME=1'"),
    ],
)
def test_parse_malformed_line_names_the_line(text, message):
    with pytest.raises(ValueError) as caught:
        pins.parse(text)
    assert str(caught.value) == message


def test_parse_undefined_reference_names_the_line_and_key():
    with pytest.raises(ValueError) as caught:
        pins.parse("A=1\n\nB=${A}-${MISSING}\n")
    assert str(caught.value) == "scripts/versions.env line 3: ${MISSING} is not defined above"


def test_parse_reference_to_a_later_line_is_undefined():
    with pytest.raises(ValueError) as caught:
        pins.parse("TAG=${RELEASE}-py3\nRELEASE=26.02\n")
    assert str(caught.value) == "scripts/versions.env line 1: ${RELEASE} is not defined above"


def test_load_the_real_pin_file():
    loaded = pins.load()
    assert loaded == pins.load(str(ROOT))
    assert loaded == pins.parse((ROOT / "scripts" / "versions.env").read_text(encoding="utf-8"))
    assert loaded["TRITON_IMAGE"] == f"{loaded['TRITON_IMAGE_REPOSITORY']}:{loaded['TRITON_IMAGE_TAG']}"
    assert loaded["TRITON_IMAGE_TAG"] == f"{loaded['TRITON_RELEASE']}-py3"
    assert all("${" not in value for value in loaded.values())
    for key in ("TRITON_RELEASE", "ISTIO_VERSION", "HELM_VERSION", "KUBERNETES_VERSION", "EKSCTL_VERSION"):
        assert loaded[key], key


def test_collection_root_holds_the_pin_file():
    assert Path(pins.collection_root()).resolve() == ROOT
    assert (ROOT / pins.PIN_FILE).is_file()


def test_load_of_another_root(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "versions.env").write_text("X=1\nY=${X}.2\n", encoding="utf-8")
    assert pins.load(str(tmp_path)) == {"X": "1", "Y": "1.2"}
    with pytest.raises(FileNotFoundError):
        pins.load(str(tmp_path / "nowhere"))
