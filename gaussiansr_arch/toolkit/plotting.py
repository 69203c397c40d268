"""The one matplotlib setup of the tools: the non-interactive Agg backend (no display needed)."""


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend selected (imported lazily: matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt
