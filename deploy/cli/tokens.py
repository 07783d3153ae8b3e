"""``mlgate token``: print a bearer token that this machine's ``mlgate up`` accepts.

Signed with the data dir's local key (created if missing, as ``mlgate up`` would),
or with ``auth.hs256_secret`` when that is configured. Stacks that trust an
external issuer (``jwks_url``, ...) take tokens from that issuer instead.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from deploy.config import ConfigError, load_settings
from deploy.keys import mint_token, parse_duration


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="print a bearer token for this machine's mlgate up",
                       description="Print a bearer token that this machine's mlgate up "
                       "accepts: signed with the data dir's key (created if missing), or with "
                       "auth.hs256_secret when that is configured.")
    p.add_argument("--role", dest="roles", action="append", default=[], metavar="ROLE",
                   help="role to grant (repeatable; default: admin). Built-in policy roles: "
                        "admin, data_scientist, viewer")
    p.add_argument("--sub", default=None, help="subject (default: your user name)")
    p.add_argument("--ttl", default="1h", help="lifetime, e.g. 30m, 1h, 7d (default 1h)")
    p.add_argument("--data-dir", help="the data dir of mlgate up (default ./.mlgate)")
    p.add_argument("--config", help="mlgate.yaml, for auth.issuer/audience/roles_claim")
    p.set_defaults(func=cmd_token)


def cmd_token(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl)
        settings = load_settings(args.config, overrides={"data_dir": args.data_dir})
        if not settings.auth.enabled:
            raise ConfigError("auth is disabled in this configuration; no token is needed")
        token = mint_token(settings.auth, settings.data_path, roles=args.roles or ["admin"],
                           subject=args.sub or _user(), ttl=ttl)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "mlgate-user"
