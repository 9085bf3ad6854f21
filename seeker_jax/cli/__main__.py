"""`python -m seeker_jax.cli` runs the command line."""
import sys

from seeker_jax.cli.main import main

sys.exit(main())
