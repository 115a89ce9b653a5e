"""The image commands of ``hako``: pull, push, images, rmi, tag, save, load, import, login,
logout, and the ``hako image ...`` group (ls, rm, inspect, mount, unmount, prune, ...)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hako.errors import ConfigError, HakoError, NotFound


def _bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {s!r}")


def _store(args: argparse.Namespace) -> Any:
    from hako.images.store import ImageStore

    return ImageStore(args.root)


def _tls(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-verify", type=_bool, nargs="?", const=True, default=None, metavar="BOOL",
                   help="require HTTPS with a verified certificate (default: yes, except loopback)")


# -- commands ----------------------------------------------------------------------------
def _term_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so a stopped pull or load rolls back what it made."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def cmd_pull(args: argparse.Namespace) -> int:
    _term_as_interrupt()
    with _store(args) as s:
        image = s.pull(args.ref, platform=args.platform, tls_verify=args.tls_verify, quiet=args.quiet)
    print(image.id[7:])
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    with _store(args) as s:
        digest = s.push(args.ref, args.dest, tls_verify=args.tls_verify, quiet=args.quiet,
                        compression=args.compression_format)
    if not args.quiet:
        print(digest)
    return 0


def _ago(created: str) -> str:
    from datetime import datetime

    if not created:
        return "N/A"
    try:
        t = datetime.fromisoformat(created.replace("Z", "+00:00")[:26] + "+00:00"
                                   if "." in created else created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return created
    d = time.time() - t
    for unit, sec in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400),
                      ("hour", 3600), ("minute", 60)):
        if d >= sec:
            n = int(d // sec)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "Less than a minute ago" if d >= 0 else created


def cmd_images(args: argparse.Namespace) -> int:
    from hako.images.inspection import familiar
    from hako.images.progress import human

    with _store(args) as s:
        images = s.list()
        if args.filter_ref:
            wanted = {s.resolve_id(r) for r in args.filter_ref if s.exists(r)}
            images = [i for i in images if i.id in wanted]
        for f in args.filter or []:
            images = [i for i in images if _matches(i, f)]
        rows = []
        for img in images:
            names = img.repo_tags or [""]
            for name in names:
                if name:
                    fam = familiar(name)
                    repo, _, tag = fam.rpartition(":")
                else:
                    repo, tag = "<none>", "<none>"
                digest = img.repo_digests[0].rsplit("@", 1)[1] if img.repo_digests else ""
                rows.append({"Repository": repo, "Tag": tag, "Id": img.id, "Digest": digest,
                             "Created": img.created, "CreatedSince": _ago(img.created), "Size": img.size,
                             "Names": [familiar(t) for t in img.repo_tags]})
    if args.quiet:
        seen: set[str] = set()
        for r in rows:
            if r["Id"] not in seen:
                seen.add(r["Id"])
                print(r["Id"] if args.no_trunc else r["Id"][7:19])
        return 0
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if args.format and args.format != "table":
        from hako.cli.gotemplate import render

        for r in rows:
            # Docker's templates spell the id .ID, and show it short unless --no-trunc.
            print(render(args.format, {**r, "ID": r["Id"] if args.no_trunc else r["Id"][7:19]}))
        return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = [headers]
    for r in rows:
        rid = r["Id"] if args.no_trunc else r["Id"][7:19]
        table.append([r["Repository"], r["Tag"]] + ([r["Digest"] or "<none>"] if args.digests else [])
                     + [rid, r["CreatedSince"], human(r["Size"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _matches(image: Any, flt: str) -> bool:
    """Docker's ``images --filter``: dangling=true|false, reference=GLOB, label=KEY[=VALUE]."""
    import fnmatch

    from hako.images.inspection import familiar

    key, _, value = flt.partition("=")
    if key == "dangling":
        return (not image.repo_tags) == (value.lower() in ("true", "1"))
    if key == "reference":
        names = [familiar(t) for t in image.repo_tags]
        return any(fnmatch.fnmatch(n, value) or fnmatch.fnmatch(n.rsplit(":", 1)[0], value) for n in names)
    if key == "label":
        labels = (image.config.get("config") or {}).get("Labels") or {}
        k, eq, v = value.partition("=")
        return k in labels and (not eq or labels[k] == v)
    raise ConfigError("--filter", f"unsupported filter {flt!r}: use dangling, reference or label")


def cmd_rmi(args: argparse.Namespace) -> int:
    rc = 0
    with _store(args) as s:
        for ref in args.images:
            try:
                for line in s.remove(ref, force=args.force):
                    print(line)
            except NotFound as exc:
                # Like podman: -f makes a missing image a non-error, so scripts can clean up blindly.
                if not args.force:
                    print(f"hako: {exc}", file=sys.stderr)
                    rc = 125
            except HakoError as exc:
                print(f"hako: {exc}", file=sys.stderr)
                rc = 125
    return rc


def cmd_tag(args: argparse.Namespace) -> int:
    with _store(args) as s:
        s.tag(args.src, args.dst)
    return 0


def cmd_untag(args: argparse.Namespace) -> int:
    with _store(args) as s:
        for name in args.names:
            s.untag(name)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    with _store(args) as s:
        out = [s.inspect(r) for r in args.images]
    if args.format:
        from hako.cli.gotemplate import render

        for o in out:
            print(render(args.format, o))
    else:
        print(json.dumps(out, indent=4))
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    with _store(args) as s:
        if args.output:
            s.save(args.images, Path(args.output), args.format)
            return 0
        if sys.stdout.isatty():
            raise ConfigError("-o", "give an output file with -o FILE (refusing to write a tar to a terminal)")
        # The store lock keeps prune (which empties blobs/tmp) away from our temp dir.
        with s.lock(), tempfile.TemporaryDirectory(dir=s.content.tmp_dir) as d:
            out = Path(d) / "archive.tar"
            s.save(args.images, out, args.format)
            with open(out, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
            sys.stdout.flush()
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from hako.images.inspection import familiar

    with _store(args) as s:
        if args.input:
            images = s.load(Path(args.input))
        else:
            if sys.stdin.isatty():
                raise ConfigError("-i", "give an archive with -i FILE or on stdin")
            with s.lock(), tempfile.TemporaryDirectory(dir=s.content.tmp_dir) as d:
                tmp = Path(d) / "archive.tar"
                with open(tmp, "wb") as f:
                    shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
                images = s.load(tmp)
        for img in images:
            names = ", ".join(familiar(t) for t in img.repo_tags) or img.id
            print(f"Loaded image: {names}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from hako.images.progress import human

    with _store(args) as s:
        img = s.get(args.image)
        sizes = []
        for chain in img.chain_ids:
            row = s.db.layer(chain)
            sizes.append(row.size if row else 0)
    history = img.config.get("history") or [{"created_by": ""} for _ in img.layers]
    rows = []
    layer = 0
    for h in history:
        size = 0
        if not h.get("empty_layer") and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        rows.append((h.get("created", ""), str(h.get("created_by", "")), size, str(h.get("comment", ""))))
    rows.reverse()
    if args.format == "json":
        print(json.dumps([{"Created": c, "CreatedBy": b, "Size": n, "Comment": m} for c, b, n, m in rows], indent=2))
        return 0
    print(f"{'IMAGE':14} {'CREATED':20} {'CREATED BY':45} {'SIZE':10} COMMENT")
    for i, (c, b, n, m) in enumerate(rows):
        ident = img.id[7:19] if i == 0 else "<missing>"
        by = b if args.no_trunc or len(b) <= 45 else b[:42] + "..."
        print(f"{ident:14} {_ago(c):20} {by:45} {human(n):10} {m}".rstrip())
    return 0


def cmd_exists(args: argparse.Namespace) -> int:
    with _store(args) as s:
        return 0 if s.exists(args.image) else 1


def cmd_import(args: argparse.Namespace) -> int:
    from hako.images.importer import DEFAULT_PATH

    changes: dict[str, Any] = {}
    for c in args.change or []:
        key, _, val = c.partition(" ")
        key = key.upper()
        val = val.strip()
        if key in ("CMD", "ENTRYPOINT"):
            try:
                argv = json.loads(val) if val.startswith("[") else ["/bin/sh", "-c", val]
            except ValueError as exc:
                raise ConfigError("--change", f"{c!r}: not a JSON array: {exc}") from None
            changes["Cmd" if key == "CMD" else "Entrypoint"] = argv
        elif key == "ENV":
            k, _, v = val.partition("=")
            changes.setdefault("Env", [DEFAULT_PATH])
            changes["Env"].append(f"{k}={v}")
        elif key == "WORKDIR":
            changes["WorkingDir"] = val
        elif key == "USER":
            changes["User"] = val
        else:
            raise ConfigError("--change", f"unsupported instruction {key}")
    with _store(args) as s:
        img = s.import_tarball(Path(args.tarball), args.ref, message=args.message or "", changes=changes)
    print(img.id)
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    import getpass

    from hako.images import auth
    from hako.images.registry import RegistryClient

    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        password = args.password
    else:
        password = getpass.getpass("Password: ")
    creds = auth.Credentials(user, password)
    registry = _registry_host(args.registry)
    with RegistryClient(registry, root=args.root, tls_verify=args.tls_verify, credentials=creds) as c:
        r = c.request("GET", "/v2/", scope="")
        if r.status_code != 200:
            raise HakoError(f"login to {registry} failed: HTTP {r.status_code}")
    auth.store(args.root, registry, creds)
    print("Login Succeeded!")
    return 0


def _registry_host(s: str) -> str:
    s = s.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return "docker.io" if s in ("index.docker.io", "registry-1.docker.io") else s


def cmd_logout(args: argparse.Namespace) -> int:
    from hako.images import auth

    registry = _registry_host(args.registry)
    if not auth.remove(args.root, registry):
        raise HakoError(f"not logged into {registry}")
    print(f"Removed login credentials for {registry}")
    return 0


def cmd_mount(args: argparse.Namespace) -> int:
    with _store(args) as s:
        for ref in args.images:
            print(s.mount(ref))
    return 0


def cmd_unmount(args: argparse.Namespace) -> int:
    with _store(args) as s:
        for ref in args.images:
            s.unmount(ref)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    with _store(args) as s:
        for line in s.prune(all_images=args.all):
            print(line)
    return 0


# -- registration ------------------------------------------------------------------------
Adder = Callable[[Any, str, list[str]], argparse.ArgumentParser]


def _pull(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases, help="pull an image from a registry")
    p.add_argument("--platform", help="os/arch[/variant] to choose from a multi-platform image")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    _tls(p)
    p.add_argument("ref")
    p.set_defaults(func=cmd_pull)
    return p


def _push(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases, help="push an image to a registry")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--compression-format", default="gzip", choices=["gzip", "zstd", "none"],
                   help="for uncompressed layers (imports); compressed ones are pushed as they are")
    _tls(p)
    p.add_argument("ref")
    p.add_argument("dest", nargs="?", help="destination reference (default: REF)")
    p.set_defaults(func=cmd_push)
    return p


def _ls(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases, help="list images")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("-a", "--all", action="store_true", help="accepted for Docker compatibility")
    p.add_argument("--format", help="table, json, or a {{.Field}} template")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--digests", action="store_true")
    p.add_argument("-f", "--filter", action="append", help="dangling=true, reference=GLOB, label=K[=V]")
    p.add_argument("filter_ref", nargs="*", metavar="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_images)
    return p


def _rm(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases, help="remove images")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_rmi)
    return p


def _tag(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases, help="add a name to an image")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=cmd_tag)
    return p


def _save(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases, help="write images to an archive")
    p.add_argument("-o", "--output")
    p.add_argument("--format", default="oci-archive", choices=["oci-archive", "docker-archive"])
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_save)
    return p


def _load(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases, help="load images from an archive")
    p.add_argument("-i", "--input")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_load)
    return p


def _import(sp: Any, name: str, aliases: list[str]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sp.add_parser(name, aliases=aliases,
                                               help="make a one-layer image from a rootfs tarball")
    p.add_argument("-m", "--message")
    p.add_argument("-c", "--change", action="append", help="CMD, ENTRYPOINT, ENV, WORKDIR or USER")
    p.add_argument("tarball")
    p.add_argument("ref", nargs="?")
    p.set_defaults(func=cmd_import)
    return p


def register(subparsers: Any) -> None:
    commands: list[tuple[Adder, str, list[str]]] = [(_pull, "pull", []), (_push, "push", []), (_ls, "images", []),
                                 (_rm, "rmi", []), (_tag, "tag", []), (_save, "save", []),
                                 (_load, "load", []), (_import, "import", [])]
    for adder, name, aliases in commands:
        adder(subparsers, name, aliases)

    p = subparsers.add_parser("login", help="store credentials for a registry")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    _tls(p)
    p.add_argument("registry")
    p.set_defaults(func=cmd_login)
    p = subparsers.add_parser("logout", help="remove stored credentials")
    p.add_argument("registry")
    p.set_defaults(func=cmd_logout)

    img = subparsers.add_parser("image", help="manage images")
    isp = img.add_subparsers(dest="image_command", metavar="COMMAND")
    img.set_defaults(func=lambda a: (img.print_help(), 125)[1])
    sub: list[tuple[Adder, str, list[str]]] = [
        (_pull, "pull", []), (_push, "push", []), (_ls, "ls", ["list"]), (_rm, "rm", []), (_tag, "tag", []),
        (_save, "save", []), (_load, "load", []), (_import, "import", [])]
    for adder, name, aliases in sub:
        adder(isp, name, aliases)
    p = isp.add_parser("inspect", help="show image details as JSON")
    p.add_argument("-f", "--format")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_inspect)
    for parent, name in ((subparsers, "history"), (isp, "history")):
        p = parent.add_parser(name, help="show the history of an image")
        p.add_argument("--format", help="json")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("image")
        p.set_defaults(func=cmd_history)
    p = isp.add_parser("exists", help="exit 0 if the image exists, 1 if not")
    p.add_argument("image")
    p.set_defaults(func=cmd_exists)
    p = isp.add_parser("untag", help="remove names from an image")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_untag)
    p = isp.add_parser("mount", help="mount an image read-only and print the path")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_mount)
    p = isp.add_parser("unmount", aliases=["umount"], help="unmount an image")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_unmount)
    p = isp.add_parser("prune", help="remove dangling images and unused blobs")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="accepted for Docker compatibility")
    p.set_defaults(func=cmd_prune)
