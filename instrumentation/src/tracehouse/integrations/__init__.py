"""Training-loop integrations: PyTorch Lightning, Keras, Hugging Face transformers, scikit-learn.

Each module imports its framework, so import only the one you use:

    from tracehouse.integrations.lightning import TracehouseLogger
    from tracehouse.integrations.keras import TracehouseCallback
    from tracehouse.integrations.transformers import TracehouseCallback
    from tracehouse.integrations.sklearn import log_fit

With TRACEHOUSE_INSTRUMENT=1 they attach themselves (see `tracehouse.instrumentors`): every
`fit`/`train` becomes a run.
"""
