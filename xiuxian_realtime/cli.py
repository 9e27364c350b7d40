"""Command line: `xiuxian-realtime serve` and `xiuxian-realtime seed-players`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xiuxian-realtime")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (REST API and /ws on one port)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1, env HOST)")
    serve.add_argument("--port", type=int, help="port (default 3000, env PORT)")
    serve.add_argument("--data-dir", help="folder for the SQLite file and dev secrets (env DATA_DIR)")

    seed = sub.add_parser("seed-players", help="create players directly in the database, for load tests")
    seed.add_argument("--count", type=int, required=True)
    seed.add_argument("--out", required=True, help="file for `userId<TAB>token` lines")
    seed.add_argument("--data-dir")
    seed.add_argument("--prefix", default="bench")

    args = parser.parse_args(argv)
    settings = _settings(args)
    if args.command == "serve":
        from .server import serve as run_server
        run_server(settings)
        return 0
    if args.command == "seed-players":
        from .seed import seed_players
        n = asyncio.run(seed_players(settings, args.count, Path(args.out), args.prefix))
        print(f"wrote {n} players to {args.out}", file=sys.stderr)
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
