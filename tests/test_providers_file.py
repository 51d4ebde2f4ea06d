"""The providers file: every entry checked at start, in routing order."""

from pathlib import Path

import pytest

from smsproxy.config import Config, ConfigError

INFOBIP = '''[[providers]]
name = "ib"
api = "infobip"
url = "https://ib.example"
api_key = "k"
webhook_user = "u"
webhook_password = "p"
price = 0.02
'''
TWILIO = '''[[providers]]
name = "tw"
api = "twilio"
url = "https://tw.example"
account_sid = "AC1"
auth_token = "t"
sender = "+15550100"
price = 0.01
'''


def config(tmp_path: Path, text: str, **options: object) -> Config:
    path = tmp_path / "providers.toml"
    path.write_text(text)
    return Config(providers=str(path), **options)  # type: ignore[arg-type]


def test_without_priorities_the_cheapest_comes_first(tmp_path: Path) -> None:
    entries = config(tmp_path, INFOBIP + TWILIO).provider_entries()
    assert [e.name for e in entries] == ["tw", "ib"]
    assert entries[1].weight == 100


def test_priorities_override_prices(tmp_path: Path) -> None:
    text = INFOBIP + "priority = 1\n" + TWILIO + "priority = 2\n"
    assert [e.name for e in config(tmp_path, text).provider_entries()] == ["ib", "tw"]


@pytest.mark.parametrize(("text", "says"), [
    (INFOBIP.replace('api_key = "k"\n', ""), "needs api_key"),
    (INFOBIP.replace('"infobip"', '"vonage"'), "api"),
    (INFOBIP + "colour = 1\n", "colour"),
    (INFOBIP.replace("0.02", "-1"), "price"),
    (INFOBIP + INFOBIP, "unique: ib"),
    (TWILIO.replace('sender = "+15550100"\n', ""), "needs a sender"),
    (INFOBIP + "priority = 1\n" + TWILIO, "every provider or on none"),
    (INFOBIP + 'sender = "twelve chars"\n', "sender"),
    ("[[providers]\n", "not valid TOML"),
    ("title = 1\n", "one or more [[providers]]"),
])
def test_a_bad_entry_is_refused_naming_what_is_wrong(tmp_path: Path, text: str,
                                                     says: str) -> None:
    with pytest.raises(ConfigError, match="--providers") as raised:
        config(tmp_path, text)
    assert says in str(raised.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Config(providers=str(tmp_path / "absent.toml"))


def test_a_default_sender_serves_a_twilio_entry_without_one(tmp_path: Path) -> None:
    text = TWILIO.replace('sender = "+15550100"\n', "")
    assert config(tmp_path, text, default_sender="MyShop").provider_entries()[0].name == "tw"


def test_providers_and_provider_are_one_or_the_other(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="replaces --provider"):
        config(tmp_path, INFOBIP, provider="https://fast.example", webhook_insecure=True)
