"""M²IR reproduction workbook library: model, losses, data, training, evaluation, efficiency.

Importing this package does nothing beyond defining names: no files read, no seeds set,
nothing downloaded. Submodules are imported explicitly (`from m2ir_lib.model import M2IR`).
"""

__version__ = "0.1.0"
