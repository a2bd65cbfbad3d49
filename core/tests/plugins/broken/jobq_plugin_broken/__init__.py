"""A plugin whose optional dependency is missing: it must be reported, not crash the CLI."""

import jobq_no_such_dependency  # noqa: F401
