"""`issue` and `revoke`: hand out a link from the shell, and make one stop working now."""

from __future__ import annotations

import argparse
import re

from tempdl.audit.open import open_audit
from tempdl.config.settings import Settings
from tempdl.errors import CommandError, LinkInvalid
from tempdl.links.catalog import Catalog
from tempdl.links.issuing import Issuer
from tempdl.links.tokens import LinkSigner
from tempdl.timeutil import utc_now


def issue(args: argparse.Namespace, settings: Settings) -> int:
    catalog = Catalog(settings.files_dir, settings.files)
    offered = catalog.by_id(args.file_id)
    if offered is None and catalog.entry(args.file_id) is not None:
        raise CommandError(f"file {args.file_id!r} cannot be served: missing, unreadable or outside files_dir")
    if offered is None:
        raise CommandError(f"no file with id {args.file_id!r} is on offer (see files_dir and [[files]])")
    audit = open_audit(settings.database_url)
    try:
        issued = Issuer(settings, audit, LinkSigner(settings.secret_keys)).issue(
            offered,
            recipient=args.recipient,
            channel="cli",
            now=utc_now(),
            ttl=args.ttl,
            max_downloads=args.max_downloads,
        )
    finally:
        audit.close()
    print(issued.url)
    return 0


def _issuance_id(target: str, settings: Settings) -> int:
    if target.isdigit():
        return int(target)
    token = re.sub(r"^.*/api/get_file/", "", target.strip()).split("?")[0]
    try:
        return LinkSigner(settings.secret_keys).read(token).issuance_id
    except LinkInvalid:
        raise CommandError("that is neither an issuance id nor a link signed by this server") from None


def revoke(args: argparse.Namespace, settings: Settings) -> int:
    issuance_id = _issuance_id(args.target, settings)
    audit = open_audit(settings.database_url)
    try:
        if not audit.revoke(issuance_id, utc_now()):
            raise CommandError(f"no issuance with id {issuance_id}")
    finally:
        audit.close()
    print(f"revoked issuance {issuance_id}")
    return 0
