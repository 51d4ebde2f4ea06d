"""Configuration: flags over environment over defaults; bad values exit 2 naming the option."""

import pytest

from api.cli import build_parser, main
from smsproxy.config import OPTIONS, Config, ConfigError, env_name


def test_defaults_are_the_designed_ones():
    config = Config()
    assert (config.host, config.port, config.provider) == ("127.0.0.1", 8080, "memory")
    assert (config.batch_size, config.max_delay, config.max_attempts) == (100, 1.0, 3)
    assert (config.max_in_flight, config.message_ttl, config.max_queue) == (4, 3600.0, 100_000)
    assert (config.provider_timeout, config.log_format) == (10.0, "json")


def test_environment_sets_options():
    config = Config.from_sources({}, {"SMSPROXY_BATCH_SIZE": "7", "SMSPROXY_MAX_DELAY": "0.25"})
    assert (config.batch_size, config.max_delay) == (7, 0.25)


def test_flag_beats_environment():
    config = Config.from_sources({"batch_size": "9"}, {"SMSPROXY_BATCH_SIZE": "7"})
    assert config.batch_size == 9


def test_every_option_has_an_environment_name():
    assert env_name("max_in_flight") == "SMSPROXY_MAX_IN_FLIGHT"
    assert len({env_name(o.name) for o in OPTIONS}) == len(OPTIONS)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("batch_size", "-1"),
        ("batch_size", "ten"),
        ("port", "70000"),
        ("max_delay", "nan"),
        ("max_in_flight", "0"),
        ("store", "redis://localhost"),
        ("provider", "carrier-pigeon"),
        ("sim_failure_rate", "1.5"),
        ("log_format", "xml"),
        ("message_ttl", "0"),
        ("store", "sqlite:////no/such/folder/x.db"),
        ("store", "sqlite:///"),
        ("provider", "ftp://provider.example"),
        ("provider", "http://"),
        ("webhook_secret", ""),
        ("log_level", "loud"),
    ],
)
def test_bad_value_is_a_config_error_naming_the_option(option, value):
    with pytest.raises(ConfigError) as error:
        Config.from_sources({option: value}, {})
    assert error.value.option == option
    assert f"--{option.replace('_', '-')}" in str(error.value)


def test_max_attempts_below_one_is_allowed_and_means_one():
    assert Config(max_attempts=-5).effective_max_attempts == 1
    assert Config(batch_size=0).effective_batch_size == 1


def test_cli_exits_2_and_names_the_bad_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--batch-size", "-3"])
    assert exit_.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


def test_cli_exits_2_when_the_store_cannot_be_opened(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.db").write_text("this is not a database, it is a text file " * 10)
    assert main(["serve", "--store", "sqlite:///bad.db", "--port", "0"]) == 2
    assert "--store" in capsys.readouterr().err


def test_store_under_something_that_is_not_a_folder_is_refused(tmp_path):
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(ConfigError, match="not a writable directory"):
        Config(store=f"sqlite:///{tmp_path}/plain-file/x.db")
    with pytest.raises(ConfigError, match="not a readable, writable file"):
        Config(store=f"sqlite:///{tmp_path}")  # a folder where the database file should be
    Config(store=f"sqlite:///{tmp_path}/x.db")


def test_secrets_are_masked_for_logging():
    config = Config(provider_api_key="k-123", webhook_secret="s-456")
    loggable = config.loggable()
    assert (loggable["provider_api_key"], loggable["webhook_secret"]) == ("***", "***")
    assert "k-123" not in str(loggable) and "s-456" not in str(loggable)


def test_cli_exits_2_on_a_bad_environment_value(capsys, monkeypatch):
    monkeypatch.setenv("SMSPROXY_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exit_:
        main(["serve"])
    assert exit_.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_an_http_provider_needs_a_webhook_secret():
    with pytest.raises(ConfigError, match="--webhook-secret: is required with an HTTP provider"):
        Config(provider="http://127.0.0.1:9090")
    Config(provider="http://127.0.0.1:9090", webhook_secret="s")
    Config(provider="http://127.0.0.1:9090", webhook_insecure=True)
    Config(provider="memory")  # the simulator reports in-process


def test_cli_exits_2_for_an_http_provider_without_a_secret(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--provider", "http://127.0.0.1:9090"])
    assert exit_.value.code == 2
    assert "--webhook-insecure" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "environ", "insecure"), [
    (["--webhook-insecure"], {}, True),
    ([], {"SMSPROXY_WEBHOOK_INSECURE": "true"}, True),
    ([], {"SMSPROXY_WEBHOOK_INSECURE": "0"}, False),
    ([], {}, False),
])
def test_webhook_insecure_is_a_switch(flags, environ, insecure):
    args = build_parser().parse_args(["serve", *flags])
    values = {k: v for k, v in vars(args).items() if k != "command"}
    assert Config.from_sources(values, environ).webhook_insecure is insecure


def test_a_switch_refuses_words_it_does_not_know():
    with pytest.raises(ConfigError, match="--webhook-insecure"):
        Config.from_sources({}, {"SMSPROXY_WEBHOOK_INSECURE": "maybe"})


@pytest.mark.parametrize(("options", "problem"), [
    ({"workers": 2}, "needs a PostgreSQL --store"),
    ({"workers": 2, "store": "postgresql://postgres@127.0.0.1/x", "port": 0}, "fixed --port"),
    ({"store": "postgresql://postgres@127.0.0.1/x", "claim_lease": 5.0}, "longer than"),
])
def test_several_processes_need_what_they_can_share(options, problem):
    with pytest.raises(ConfigError, match=problem):
        Config(**options)
    Config(workers=2, store="postgresql://postgres@127.0.0.1/x", port=8080)


def test_a_postgresql_password_is_masked_for_logging():
    config = Config(store="postgresql://smsproxy:s3cret@db.example:5432/smsproxy")
    assert config.loggable()["store"] == "postgresql://smsproxy:***@db.example:5432/smsproxy"


def test_the_version_is_the_installed_package_s(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"smsproxy {version('smsproxy')}"

