"""FID's Inception features come in batches and equal the one-image-at-a-time ones (issue 25).

The real weights are not part of the repository: a randomly initialised FID Inception (same
architecture and resize) saved as the weights file stands in, through the same loading path.
"""

import numpy as np
import pytest
import torch

from m2ir_lib.data import metrics

pytest.importorskip("pytorch_fid")


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A weights file with the FID Inception's keys and random values."""
    import torchvision.models.inception as tv
    from pytorch_fid import inception as fid_net

    built = []
    with pytest.MonkeyPatch.context() as m:  # build it without fetching the real weights
        m.setattr(fid_net, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(tv.Inception3, "load_state_dict", lambda self, *a, **k: built.append(self))
        torch.manual_seed(0)
        fid_net.fid_inception_v3()
    path = tmp_path_factory.mktemp("fid") / metrics.FID_WEIGHTS_FILE
    torch.save(built[0].state_dict(), path)
    return path


def _one_at_a_time(net, images):
    """The loop `metrics.fid` used before: one image per forward pass, the network resizing."""
    out = []
    with torch.no_grad():
        for a in images:
            t = torch.from_numpy(np.clip(a, 0, 1).astype(np.float32)).permute(2, 0, 1)[None]
            out.append(net(t)[0].flatten(1).double().numpy())
    return np.concatenate(out)


def test_fid_features_in_batches_equal_one_at_a_time(random_weights, monkeypatch):
    from pytorch_fid import fid_score

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    sizes = [(48, 64), (40, 40), (64, 48), (32, 80), (56, 56)]  # mixed sizes share a batch
    restored = [rng.random((h, w, 3)) for h, w in sizes[:3]]
    target = [rng.random((h, w, 3)) for h, w in sizes[3:]]
    seen = []  # the statistics FID compares (its matrix square root is not what is tested)
    monkeypatch.setattr(fid_score, "calculate_frechet_distance", lambda *s: seen.append(s) or 0.0)
    assert metrics.fid(restored, target, random_weights, batch_size=2) == 0.0  # 2 + 1, then 2
    net = metrics.fid_inception(random_weights)
    for images, (mu, sigma) in zip((restored, target), (seen[0][:2], seen[0][2:]), strict=True):
        one = _one_at_a_time(net, images)
        scale = np.abs(one).max()
        assert np.allclose(mu, one.mean(0), rtol=1e-4, atol=1e-5 * scale)
        assert np.allclose(sigma, np.cov(one, rowvar=False), rtol=1e-3, atol=1e-5 * scale**2)
