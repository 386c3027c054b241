"""The workbook: what the notebooks call, one module per job, top of the library.

From the bottom up: `stats` (bootstrap intervals, seed spread, rank tests), `results` (the
long-format CSVs, the paper's rows beside ours), `settings` (the settings of §IV-A and where
their data is), `experiments` (plan a run and its schedule, train the runs), `tables` (which
runs make which table), `scoring` (trained runs → a table's rows), `table_xiii`, `runinfo`,
`samples`, `floor` (why a cell falls below the degraded input), `report` (the paper's
layout), `verdicts` (what a table concludes), `plots`, and on top `adec` (how much ADEC is
used), `visualize`, `walkthrough` (notebook 01), `cost` and `summary` (the summary page).
pyproject.toml states the order; nothing below imports it.
"""
