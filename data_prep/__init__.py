"""Data preparation: manifests of the real data sets and the embedded mini benchmark.

* ``python -m data_prep <dataset> --root DIR --out DIR`` finds a real data set in one of its
  published layouts, checks every image and count, and writes a manifest plus a report
  (`data_prep.prepare`, layouts in `data_prep.adapters`).
* ``python -m data_prep.mini --out data/mini`` builds the synthetic benchmark from the
  photographs inside the installed wheels (`data_prep.mini`, degradations in
  `data_prep.synth`).

Importing the package does nothing beyond defining names.
"""
