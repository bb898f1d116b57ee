import sys

from movielinks.trainer.cli import entry

sys.exit(entry())
