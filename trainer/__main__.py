import sys

from movielinks.trainer.cli import main

sys.exit(main())
