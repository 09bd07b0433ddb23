"""The attachment settings: read from the environment by small pure functions, checked."""

from __future__ import annotations

import pytest

from portal import config, quota
from portal.config import ConfigError, MiB


def test_the_defaults_are_those_of_the_issue():
    found = config.from_env({})
    assert found.max_file_bytes == 500 * MiB
    assert found.max_attachments_bytes == 2048 * MiB
    assert found.max_files == 64
    assert found.quota_bytes == 0
    assert found.min_free_bytes == 1024 * MiB
    assert found.upload_expiry_hours == 48


def test_each_setting_is_read():
    found = config.from_env({
        "PORTAL_MAX_FILE_MIB": "10", "PORTAL_MAX_ATTACHMENTS_MIB": "20", "PORTAL_MAX_FILES": "3",
        "PORTAL_QUOTA_MIB": "4096", "PORTAL_MIN_FREE_MIB": "0", "PORTAL_UPLOAD_EXPIRY_HOURS": "6",
    })  # fmt: skip
    assert (found.max_file_bytes, found.max_attachments_bytes, found.max_files) == (
        10 * MiB, 20 * MiB, 3)  # fmt: skip
    assert (found.quota_bytes, found.min_free_bytes, found.upload_expiry_hours) == (
        4096 * MiB, 0, 6)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORTAL_MAX_FILE_MIB", "0"),
        ("PORTAL_MAX_FILE_MIB", "-1"),
        ("PORTAL_MAX_FILE_MIB", "1.5"),
        ("PORTAL_MAX_FILE_MIB", "500MB"),
        ("PORTAL_MAX_FILE_MIB", "٥"),  # an Arabic-Indic digit
        ("PORTAL_MAX_FILE_MIB", str((1 << 30) + 1)),
        ("PORTAL_MAX_ATTACHMENTS_MIB", "0"),
        ("PORTAL_MAX_FILES", "65"),
        ("PORTAL_QUOTA_MIB", "lots"),
        ("PORTAL_MIN_FREE_MIB", "-5"),
        ("PORTAL_UPLOAD_EXPIRY_HOURS", "0"),
        ("PORTAL_UPLOAD_EXPIRY_HOURS", "9000"),
    ],
)
def test_an_unusable_value_is_refused_with_a_hint(name, value):
    with pytest.raises(ConfigError) as err:
        config.from_env({name: value})
    assert name in str(err.value) and name in err.value.hint


def test_an_empty_value_means_the_default():
    assert config.from_env({"PORTAL_MAX_FILES": "  "}).max_files == 64


def test_the_largest_envelope_holds_the_largest_file_with_the_largest_metadata():
    for keys in (1, 2, 16):
        largest = quota.max_envelope(500 * MiB, keys)
        content = 16 + 500 * MiB + 65536
        assert largest == quota.envelope_size(content, keys)
        assert quota.envelope_size(content + 1, keys) >= largest


@pytest.mark.parametrize("sizes", [[0], [1], [500 * MiB], [1 << 20] * 64, [32 * MiB] * 64,
                                   [2048 * MiB - 63 * 65536] + [65536] * 63])  # fmt: skip
def test_the_allegation_bound_holds_every_mix_of_files_within_the_limit(sizes):
    total = sum(quota.envelope_size(16 + s + 65536, 2) for s in sizes)
    assert total <= quota.allegation_bound(len(sizes), 2, max(sum(sizes), 1))
