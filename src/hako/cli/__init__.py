"""The ``hako`` command line (Docker's), built from one registration module per area."""
