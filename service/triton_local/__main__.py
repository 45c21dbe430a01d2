"""`python -m service.triton_local`: the `matteserve triton-local` command without the CLI."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.triton_local.cli import main


def _parse(argv: list[str]) -> argparse.Namespace:
    """Command-line options, named as those of `matteserve triton-local`."""
    parser = argparse.ArgumentParser(prog="python -m service.triton_local", description=main.__doc__)
    parser.add_argument("--http-port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--grpc-port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="0 picks a free port")
    parser.add_argument("--repository", type=Path, default=Path("triton_repo"))
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--instances", type=int, default=None, help="instances per model (default: config)")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads per instance")
    parser.add_argument("--log-path", type=Path, default=None)
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(
        main(
            args.http_port,
            args.grpc_port,
            args.metrics_port,
            args.repository,
            host=args.host,
            instance_count=args.instances,
            torch_threads=args.torch_threads,
            log_path=args.log_path,
            startup_timeout=args.startup_timeout,
        )
    )
