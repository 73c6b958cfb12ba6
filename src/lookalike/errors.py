"""Typed errors with messages a user can act on."""


class LookalikeError(Exception):
    """Base of every error lookalike raises on purpose."""


class DecodeError(LookalikeError):
    """A file could not be read or decoded as an image."""


class ModelError(LookalikeError):
    """A model is unknown, missing, corrupt or could not be fetched."""


class CatalogError(LookalikeError):
    """The catalog database could not be opened or used."""


class UsageError(LookalikeError):
    """The caller asked for something that does not make sense (bad argument, missing folder)."""
