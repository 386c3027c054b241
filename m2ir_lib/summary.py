"""``python -m m2ir_lib.summary --profile mini``: (re)write `results/<profile>/README.md`,
the summary page of a profile's results, from the CSVs and figures already written."""

from __future__ import annotations

import argparse

from m2ir_lib.core.config import get_profile
from m2ir_lib.data.files import cli_logging, user_errors
from m2ir_lib.workbook.summary import write_summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="mini")
    args = parser.parse_args(argv)
    cli_logging()
    with user_errors(parser.prog):  # an unknown profile, a missing results folder
        print(write_summary(get_profile(args.profile)))


if __name__ == "__main__":
    main()
