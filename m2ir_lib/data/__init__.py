"""Data and metrics: manifests in, (degraded, clean) tensors out, and the scores of §IV.

`images` decodes every image (refusing corrupt ones), `datasets` reads manifests (training
crops, test sets), `metrics` computes PSNR/SSIM under the two protocols of the paper's
tables, LPIPS and FID, `files` is the one way anything in the project writes a file
(atomically), the commit outputs are stamped with, and the command lines' common set-up.
Imports only the core.
"""
