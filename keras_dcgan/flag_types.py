"""argparse types for the numeric flags of every subcommand. Standard library only (the serving side uses it).

Each flag states its range at parse time, so that a value no computation could use (a negative
count, a seed beyond 2**31 - 1, a number too large for an int64) is a one-line usage error
naming the flag, never an OverflowError from numpy after the work has begun.
"""

import argparse

INT64_MAX = 2**63 - 1


def integer_flag(minimum, maximum=INT64_MAX, unit=""):
    """An argparse type accepting integers in [minimum, maximum]; `unit` words the bound ("digits per run")."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:,}, got {value:,}")
        if value > maximum:
            bound = f"at most {maximum:,}{unit}" if unit else f"must be in [{minimum:,}, {maximum:,}]"
            raise argparse.ArgumentTypeError(f"{bound}, got {value:,}")
        return value

    return parse
