"""Data and metrics: manifests in, (degraded, clean) tensors out, and the scores of §IV.

`datasets` reads images and manifests (training crops, test sets), `metrics` computes
PSNR/SSIM under the two protocols of the paper's tables, LPIPS and FID, `files` is the one
way anything in the project writes a file (atomically) and the commit outputs are stamped
with. Imports only the core.
"""
