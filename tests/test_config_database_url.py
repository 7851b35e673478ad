"""server.database_url: where it comes from, what it accepts, how it is shown."""

from __future__ import annotations

import pytest

from mininq.config import ConfigError, config_to_toml, load_config, mask_url

URL = "postgresql://mininq:s3cret@db:5432/jobs"


def test_empty_by_default_means_sqlite():
    assert load_config(None, env={}).server.database_url == ""


def test_long_environment_form_wins_over_the_short_one():
    env = {"MININQ_DATABASE_URL": "postgres://a@h/one",
           "MININQ_SERVER_DATABASE_URL": "postgres://a@h/two"}
    assert load_config(None, env=env).server.database_url == "postgres://a@h/two"
    assert load_config(None, env={"MININQ_DATABASE_URL": URL}).server.database_url == URL


def test_the_flag_wins_over_the_environment():
    cfg = load_config(None, env={"MININQ_DATABASE_URL": URL},
                      overrides={"server.database_url": "postgresql://x@y/z"})
    assert cfg.server.database_url == "postgresql://x@y/z"


@pytest.mark.parametrize("bad", ["mysql://root:s3cret@h/db", "sqlite:///x.db", "db.example"])
def test_another_scheme_is_refused_naming_the_key_without_the_password(bad):
    with pytest.raises(ConfigError) as err:
        load_config(None, env={"MININQ_DATABASE_URL": bad})
    assert "MININQ_DATABASE_URL" in str(err.value) and "s3cret" not in str(err.value)


def test_check_config_masks_the_password():
    text = config_to_toml(load_config(None, env={"MININQ_DATABASE_URL": URL}))
    assert 'database_url = "postgresql://mininq:********@db:5432/jobs"' in text
    assert "s3cret" not in text


def test_mask_url_covers_query_passwords_and_urls_without_one():
    assert mask_url("postgresql://u@h/db?password=s3cret&x=1") == \
        "postgresql://u@h/db?password=********&x=1"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_url(URL) == "postgresql://mininq:********@db:5432/jobs"
