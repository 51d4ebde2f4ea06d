"""Named API keys, support keys and quotas as the command line takes them."""

import pytest

from smsproxy.compliance import Quota
from smsproxy.config import Config, ConfigError
from smsproxy.tenants import ApiKey, name_of_bare_key, parse_keys, parse_quotas


def test_keys_are_named_and_a_bare_key_is_named_by_its_digest():
    keys = parse_keys(" shop = s3cret ,warehouse=w4re, bare-key ")
    assert keys[:2] == (ApiKey("shop", "s3cret"), ApiKey("warehouse", "w4re"))
    assert keys[2] == ApiKey(name_of_bare_key("bare-key"), "bare-key")
    assert keys[2].name.startswith("key:") and "bare-key" not in keys[2].name
    assert parse_keys("support=x", admin=True) == (ApiKey("support", "x", admin=True),)
    # The name a bare key had before names existed: its idempotency keys and bill go on.
    digest = __import__("hashlib").sha256(b"bare-key").hexdigest()
    assert name_of_bare_key("bare-key") == f"key:{digest[:16]}"


@pytest.mark.parametrize(("text", "why"), [
    ("shop=", "entry 1 has no key"), ("a=1,,b=2", "entry 2 has no key"),
    ("sh op=1", "entry 1: a key's name"), ("=1", "entry 1: a key's name"),
    ("shop=1,shop=2", "names given twice: shop"), ("x" * 41 + "=1", "entry 1: a key's name"),
    ("b=1,a=2,b=3,a=4", "names given twice: a, b$"), ("é=1", "letters, digits, '.', '_' or '-'"),
])
def test_a_bad_key_list_says_which_entry_and_never_the_key(text, why):
    with pytest.raises(ValueError, match=why) as refused:
        parse_keys(text)
    assert "=1" not in str(refused.value) and "=2" not in str(refused.value)


def test_quotas_are_name_and_count():
    assert parse_quotas("shop=10, warehouse=1") == (Quota("shop", 10), Quota("warehouse", 1))


@pytest.mark.parametrize(("text", "why"), [
    ("shop", "'shop' is not NAME=N"), ("shop=ten", "'shop=ten': N must be a whole number"),
    ("shop=0", "'shop=0': N must be 1 or more"), ("shop=-5", "N must be 1 or more"),
    ("=3", "is not NAME=N"), ("sh op=3", "is not NAME=N"),
])
def test_a_bad_quota_is_refused_saying_why(text, why):
    with pytest.raises(ValueError, match=why):
        parse_quotas(text)


def test_the_config_checks_keys_and_quotas_together():
    config = Config(api_keys="shop=a,warehouse=b", admin_keys="support=c",
                    quotas="shop=5,support=9")
    assert [k.name for k in config.api_key_list] == ["shop", "warehouse", "support"]
    assert [k.admin for k in config.api_key_list] == [False, False, True]
    assert config.quota_by_key == {"shop": Quota("shop", 5), "support": Quota("support", 9)}
    assert "c" not in str(config.loggable()["admin_keys"])


@pytest.mark.parametrize(("options", "option", "why"), [
    ({"api_keys": "shop=a", "admin_keys": "shop=b"}, "--admin-keys", "names also in"),
    ({"api_keys": "shop=a", "admin_keys": "support=a"}, "--admin-keys", "given twice"),
    ({"api_keys": "shop=a", "quotas": "warehouse=3"}, "--quota", "names no key"),
    ({"quotas": "shop=3"}, "--quota", "names no key"),
    ({"api_keys": "shop="}, "--api-keys", "no key"),
])
def test_a_config_that_cannot_work_names_the_option(options, option, why):
    with pytest.raises(ConfigError, match=why) as refused:
        Config(**options)
    assert str(refused.value).startswith(option)


def test_quotas_come_from_repeated_flags_or_the_environment():
    from_env = Config.from_sources({"api_keys": "shop=a"}, {"SMSPROXY_QUOTAS": "shop=7"})
    assert from_env.quota_by_key == {"shop": Quota("shop", 7)}
