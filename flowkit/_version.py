"""The version of flowkit (read by the build, and shown by ``flowkit --version``)."""

__version__ = "0.1.0.dev0"
