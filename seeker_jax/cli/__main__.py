"""`python -m seeker_jax.cli.main` runs the command line."""
import sys

from seeker_jax.cli.main.main import main

sys.exit(main())
