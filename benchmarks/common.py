"""What every benchmark script shares: its command line's common options and where results go."""

from __future__ import annotations

import argparse


def bench_parser(doc: str | None, dry_help: str) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes (``--batch``, ``--repeats``, ``--dry-run``, ``--out``);
    the script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; medians are reported")
    ap.add_argument("--dry-run", action="store_true", help=dry_help)
    ap.add_argument("--out", default="results", help="folder for the result JSON")
    return ap
