"""Run configs: the shipped ones are valid; a typo is one message naming the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from vtpose.errors import VtposeError
from vtpose.paths import CONFIGS_DIR
from vtpose.training.config import PIPELINE_PARAMETERS, check_run_config


@pytest.mark.parametrize(
    "name", ["training.yaml", "smoke.yaml", "mpii.yaml", "merged.yaml", "containers.yaml", "training_k8s.yaml"]
)
def test_shipped_configs_are_valid(name: str) -> None:
    parsed = check_run_config(CONFIGS_DIR / name)
    assert set(parsed) == set(PIPELINE_PARAMETERS)


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("parameters:\n  train:\n    epoch: 3\n", "parameters.train.epoch: unknown key; did you mean 'epochs'"),
        ("parameters:\n  train:\n    args: {lr_0: 0.1}\n", "did you mean lr0"),
        ("parameters:\n  trian: {}\n", "parameters.trian is not a pipeline parameter; did you mean 'train'"),
        ("parameters:\n  validation: {on_error: ignore}\n", "parameters.validation.on_error"),
        ("parameters:\n  data: {path: data/nope}\n", "run `make data`"),
        ("parameters: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_file_key_and_fix(tmp_path: Path, yaml_text: str, expected: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    with pytest.raises(VtposeError) as error:
        check_run_config(config)
    assert str(config) in str(error.value) and expected in str(error.value)
