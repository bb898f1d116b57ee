import sys

from movielinks.collector.cli import main

sys.exit(main())
