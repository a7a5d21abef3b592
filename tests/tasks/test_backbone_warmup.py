"""The default warm-up of backbone tasks fits short runs: `cnnlab train detect --epochs 1` must not stop on it."""

import pytest

from cnnlab.errors import ConfigError
from cnnlab.tasks.detect import DetectConfig
from cnnlab.tasks.segment import SegmentConfig


@pytest.mark.parametrize("Config", [DetectConfig, SegmentConfig])
def test_default_warmup_is_one_epoch_at_most_half_the_run(Config):
    assert Config(data="d", epochs=1).validate().warmup_epochs == 0.5
    assert Config(data="d", epochs=3).validate().warmup_epochs == 1.0
    assert Config(data="d", epochs=1, warmup_epochs=0.0).validate().warmup_epochs == 0.0
    with pytest.raises(ConfigError, match="--warmup-epochs 1.0: must be shorter than --epochs 1"):
        Config(data="d", epochs=1, warmup_epochs=1.0).validate()  # asked for: still refused
