"""The ``smsproxy`` command line. ``smsproxy serve --help`` lists every option."""

import argparse
import math
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import structlog
import trio

from api.fake_apis import FAKE_APIS, FakeTwilio
from api.fake_provider import FakeProviderSettings, run_fake_api, run_fake_provider
from api.serving import ListenError, root_cause, serve, tune_garbage_collector
from api.workers import run_workers
from smsproxy import __version__
from smsproxy.config import OPTIONS, Config, ConfigError, env_name
from smsproxy.errors import SmsProxyError, StoreUnusable
from smsproxy.logs import configure_logging

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsproxy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"smsproxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="run the proxy",
        description="Run the proxy. Every option can also be set as SMSPROXY_<NAME>.",
    )
    defaults = Config()
    for option in OPTIONS:
        help = (f"{option.help} (default: {getattr(defaults, option.name)}; "
                f"env {env_name(option.name)})")
        flag = option.flag_name
        if option.switch:
            serve_parser.add_argument(flag, dest=option.name, action="store_const",
                                      const="true", help=help)
        elif option.repeatable:
            serve_parser.add_argument(flag, dest=option.name, action="append",
                                      metavar=flag.removeprefix("--").upper(), help=help)
        else:
            serve_parser.add_argument(flag, dest=option.name, metavar=option.name.upper(),
                                      help=help)
    _add_fake_provider(commands)
    return parser


def _add_fake_provider(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    fake = commands.add_parser(
        "fake-provider",
        help="run a stand-in provider (FastSMSing, Infobip, Sinch or Twilio)",
        description="A provider stand-in for end-to-end tests, demos and benchmarks.",
    )
    fake.add_argument("--api", choices=("fastsmsing", *FAKE_APIS), default="fastsmsing",
                      help="whose API to answer and report in")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9090)
    fake.add_argument("--callback-url",
                      help="the proxy's status webhook, e.g. http://127.0.0.1:8080/provider/"
                           "status (required for fastsmsing; the others use the URL a "
                           "request names, else this)")
    fake.add_argument("--secret", help="fastsmsing: HMAC secret to sign callbacks with")
    fake.add_argument("--api-key", help="the key the proxy must send (Twilio: the auth "
                                        "token, which also signs its callbacks)")
    fake.add_argument("--account-sid", default="AC0", help="twilio: the account SID")
    fake.add_argument("--webhook-user", default="", help="infobip, sinch: the webhook's "
                                                         "basic credentials")
    fake.add_argument("--webhook-password", default="")
    fake.add_argument("--seed", type=int, help="seed for the injected faults")
    for name, what in (("latency", "seconds before each answer"),
                       ("failure-rate", "share of batches refused with 500"),
                       ("timeout-rate", "share of batches taken but never answered"),
                       ("callback-failure-rate", "share of callbacks lost (and retried)")):
        fake.add_argument(f"--{name}", type=_share if name != "latency" else _seconds,
                          default=0.0, help=what)
    fake.add_argument("--log-format", choices=("json", "console"), default="json")


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "fake-provider":
        return _fake_provider(args)
    flags = {k: ",".join(v) if isinstance(v, list) else v
             for k, v in vars(args).items() if k != "command"}
    try:
        config = Config.from_sources(flags, os.environ)
    except ConfigError as error:
        parser.error(str(error))  # exits 2
    configure_logging(config.log_format, config.log_level)
    if config.workers > 1:
        return run_workers(config)
    tune_garbage_collector()
    return _run(partial(serve, config))


def _run(service: Callable[[], Awaitable[None]]) -> int:
    """Run until it stops; a failure is one line on stderr, a ``fatal`` event in the
    log with the traceback, and the exit code: 2 to fix the configuration, 1 else."""
    try:
        trio.run(service)
    except Exception as error:
        cause = root_cause(error)
        structlog.get_logger("smsproxy.cli").critical(
            "fatal", error=describe(cause), exc_info=error
        )
        print(f"smsproxy: {describe(cause)}", file=sys.stderr)
        return 2 if isinstance(cause, StoreUnusable) else 1
    return 0


def describe(cause: BaseException) -> str:
    if isinstance(cause, StoreUnusable):
        return f"--store: {cause}"
    if isinstance(cause, ListenError | SmsProxyError):
        return str(cause)
    return f"{type(cause).__name__}: {cause}"


def _fake_provider(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)
    if args.api != "fastsmsing":
        fake = FAKE_APIS[args.api](
            secret=args.api_key or "", callback_url=args.callback_url,
            webhook_user=args.webhook_user, webhook_password=args.webhook_password,
            latency=args.latency, failure_rate=args.failure_rate, seed=args.seed)
        if isinstance(fake, FakeTwilio):
            fake.account_sid = args.account_sid
        return _run(partial(run_fake_api, fake, args.host, args.port))
    if not args.callback_url:
        print("smsproxy fake-provider: --callback-url is required for fastsmsing",
              file=sys.stderr)
        return 2
    settings = FakeProviderSettings(
        callback_url=args.callback_url, secret=args.secret, api_key=args.api_key,
        latency=args.latency, failure_rate=args.failure_rate, timeout_rate=args.timeout_rate,
        callback_failure_rate=args.callback_failure_rate, seed=args.seed,
    )
    return _run(partial(run_fake_provider, settings, args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
