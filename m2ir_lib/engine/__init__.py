"""The engine: training, checkpoints, the run cache, evaluation, restoration, efficiency.

`train` is the loop of §IV-A (single process or torchrun/DDP), `checkpoint` its state and
provenance, `runs` the cache that trains each distinct run once, `evaluate` scores a
network on a manifest, `restore` applies one to any image, `efficiency` counts parameters and
MACs and `speed` measures latency and memory (Table XIII), `probes` looks inside a network
with hooks. Imports the core and the data layer; never `data_prep` or the workbook.
"""
