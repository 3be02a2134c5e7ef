"""Adapters to other libraries, each an optional extra that this package does not import by itself."""
