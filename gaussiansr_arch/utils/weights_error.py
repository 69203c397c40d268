"""The one error of weight files (its own module so that ``weights.py`` and ``arch_detect.py`` both import it)."""


class WeightsError(ValueError):
    """A weights file that cannot be used for what it is meant for; the message is one line naming it."""
