"""`python -m bench [--quick] [--json]`: the same as `subsidy-bot bench`."""

import argparse
import sys

from bench import harness

parser = argparse.ArgumentParser(prog="python -m bench", description=harness.__doc__.split("\n")[0])
harness.configure(parser)
sys.exit(harness.main(parser.parse_args()))
