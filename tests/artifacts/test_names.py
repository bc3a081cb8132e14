"""One rule for names that become folders under nemotron's folders (artifacts, runs), with or without a config key."""

from __future__ import annotations

import pytest

from nemotron.artifacts import ArtifactError
from nemotron.artifacts.names import NAME_MAX_LENGTH, InvalidNameError, name_problem, validate_artifact_name
from nemotron.artifacts.types import ArtifactRef


@pytest.mark.parametrize("name", ["a", "nano3-pretrain-data-tiny", "A.b_c-9", "a" * NAME_MAX_LENGTH, "a..b"])
def test_names_that_follow_the_rule(name):
    assert name_problem(name) is None
    assert validate_artifact_name(name, "artifact_name") == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        ("..", "does not start with a letter or digit"),
        ("../x", "does not start with a letter or digit"),
        (".x", "does not start with a letter or digit"),
        ("-x", "does not start with a letter or digit"),
        ("a/b", "contains '/'"),
        ("a\\b", "contains '\\\\'"),
        ("x\n", "contains '\\n'"),  # "$" in a regex would let the newline in
        ("a" * (NAME_MAX_LENGTH + 1), f"has {NAME_MAX_LENGTH + 1} characters"),
        (3, "is not a string (int)"),
    ],
)
def test_names_that_break_it(name, problem):
    assert name_problem(name) == problem


def test_the_error_is_an_artifact_error_and_a_value_error_naming_the_key():
    with pytest.raises(InvalidNameError) as caught:
        validate_artifact_name("../x", "run_name", example="my-run")
    assert isinstance(caught.value, ArtifactError) and isinstance(caught.value, ValueError)
    assert str(caught.value) == (
        "key 'run_name' is '../x', which does not start with a letter or digit: use letters, digits, '.', '_' "
        "and '-', starting with a letter or digit, at most 100 characters, e.g. my-run."
    )
    with pytest.raises(ArtifactError, match=r"^invalid artifact name 'a/b' \(contains '/'\): use letters"):
        validate_artifact_name("a/b")


def test_a_long_value_is_shortened_in_the_message():
    with pytest.raises(InvalidNameError) as caught:
        validate_artifact_name("a" * 300, "artifact_name")
    assert len(str(caught.value)) < 250 and "has 300 characters" in str(caught.value)


def test_references_use_the_same_rule():
    assert ArtifactRef.parse("data:v3").name == "data"
    with pytest.raises(ArtifactError, match="has 101 characters"):
        ArtifactRef.parse("a" * 101 + ":latest")
