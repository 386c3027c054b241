"""M²IR reproduction workbook library, in four layers (README, "What is where"):

- `m2ir_lib.core`: configuration, the M²IR network and its blocks, the DA-CLIP prior, the
  rivals, the losses (the "small library": torch only);
- `m2ir_lib.data`: images, manifests, datasets, metrics, the one atomic file writer;
- `m2ir_lib.engine`: training, checkpoints, the run cache, evaluation, restoration,
  efficiency;
- `m2ir_lib.workbook`: what the notebooks call for settings, runs, tables, statistics,
  verdicts, figures and the summary page.

Imports only go down (`data_prep` sits beside the engine: both use the data layer, neither
imports the other); the modules at this level are the command lines (`python -m
m2ir_lib.pipeline|train|restore|efficiency|summary`). Importing this package does nothing
beyond defining names: no files read, no seeds set, nothing downloaded.
"""

__version__ = "0.1.0"
