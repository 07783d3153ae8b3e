"""``mlgate token``: print a bearer token that this machine's ``mlgate up`` accepts; revoke tokens.

Signed with the data dir's local key (created if missing, as ``mlgate up`` would),
or with ``auth.hs256_secret`` when that is configured. Stacks that trust an
external issuer (``jwks_url``, ...) take tokens from that issuer instead.

``mlgate token revoke (--jti JTI | --jwt TOKEN | --sub SUB [--before TIME])``,
``mlgate token revocations`` and ``mlgate token unrevoke ID`` manage revoked tokens
through the API (the Python SDK's ``client.tokens``), for any issuer.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from deploy.cli.output import check_format, render
from deploy.cli.resources import connection_options, run
from deploy.config import ConfigError, load_settings
from deploy.keys import mint_token, parse_duration
from mlgate.objects import revocation_row


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
    conn = connection_options()
    cmds = p.add_subparsers(dest="action", metavar="ACTION")
    revoke = cmds.add_parser(
        "revoke", parents=[conn], help="revoke a token, or a subject's tokens",
        description="Revoke one token (by --jti, or give it whole with --jwt) or every token "
                    "of a subject issued before a time (--sub, --before; default now). "
                    "Effective on every gateway process within a second; kept across restarts.")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--jti", help="the token's jti claim")
    which.add_argument("--jwt", dest="revoked_token", metavar="TOKEN",
                       help="the token itself (its jti and exp are read from it)")
    which.add_argument("--sub", dest="revoked_sub", metavar="SUB",
                       help="a subject: its tokens issued before --before")
    revoke.add_argument("--before", help="with --sub: RFC 3339 time or epoch seconds "
                                         "(default: now)")
    revoke.add_argument("--expires-at", help="when the entry may be forgotten (RFC 3339)")
    revoke.add_argument("--reason", default="", help="why (kept with the entry)")
    revoke.add_argument("-o", "--output-format", dest="output", default="table",
                        type=check_format, help="json | yaml | table (default) | jsonpath=EXPR")
    revoke.set_defaults(func=cmd_revoke)
    listing = cmds.add_parser("revocations", parents=[conn], help="list revoked tokens")
    listing.add_argument("-o", "--output-format", dest="output", default="table",
                         type=check_format, help="json | yaml | table (default) | jsonpath=EXPR")
    listing.set_defaults(func=cmd_revocations)
    unrevoke = cmds.add_parser("unrevoke", parents=[conn], help="take a revocation back",
                               description="Delete a revocation (by its ID, as `mlgate token "
                                           "revocations` lists it): its tokens work again "
                                           "while they are valid.")
    unrevoke.add_argument("id", help="the revocation's ID")
    unrevoke.set_defaults(func=cmd_unrevoke)


def cmd_revoke(args: argparse.Namespace) -> int:
    def body(client) -> int:
        entry = client.tokens.revoke(args.jti, sub=args.revoked_sub, before=args.before,
                                     token=args.revoked_token, expires_at=args.expires_at,
                                     reason=args.reason)
        print(render([entry.to_dict()], args.output, revocation_row))
        return 0

    return run(args, body)


def cmd_revocations(args: argparse.Namespace) -> int:
    def body(client) -> int:
        print(render([r.to_dict() for r in client.tokens.revocations()], args.output,
                     revocation_row))
        return 0

    return run(args, body)


def cmd_unrevoke(args: argparse.Namespace) -> int:
    def body(client) -> int:
        print(client.tokens.delete_revocation(args.id))
        return 0

    return run(args, body)


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
