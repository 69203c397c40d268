"""The package version, in a leaf module every layer may read (weights files record it)."""

__version__ = '0.1.0'
