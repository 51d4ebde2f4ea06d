"""The ``smsproxy`` command line. ``smsproxy serve --help`` lists every option."""

import argparse
import os
import sys
from collections.abc import Sequence

import trio

from smsproxy import __version__
from smsproxy.config import OPTIONS, Config, ConfigError, env_name
from smsproxy.logs import configure_logging
from smsproxy.service import serve

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
        serve_parser.add_argument(
            f"--{option.name.replace('_', '-')}",
            dest=option.name,
            metavar=option.name.upper(),
            help=f"{option.help} (default: {getattr(defaults, option.name)}; "
            f"env {env_name(option.name)})",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = Config.from_sources(vars(args), os.environ)
    except ConfigError as error:
        parser.error(str(error))  # exits 2
    configure_logging(config.log_format)
    trio.run(serve, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
