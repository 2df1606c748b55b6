"""The network's module shapes and the loss on tiny inputs."""
import math

import pytest
import torch

from dffn_qgis.core.method.model import DFFN, angle_to_mixture, dffn_loss, spectral_angle


def test_module_shapes():
    torch.manual_seed(0)
    L, P, H, W = 10, 3, 6, 7
    net = DFFN(L, P, H * W)
    with torch.no_grad():
        A, Y1, E = net(torch.rand(1, L, H, W))
    assert A.shape == (P, H * W) and Y1.shape == (L, H * W)
    assert E.shape == (L, P)
    assert float(A.min()) >= 0.0                      # ReLU output
    assert 0.0 < float(E.min()) and float(E.max()) < 1.0  # sigmoid output


def test_valid_pixels_feed_the_endmember_module():
    L, P, H, W = 8, 2, 5, 5
    valid = torch.tensor([0, 3, 4, 10, 24])
    net = DFFN(L, P, len(valid))
    A, Y1, E = net(torch.rand(1, L, H, W), valid)
    assert A.shape == (P, 5) and Y1.shape == (L, 5)
    assert net.eem[0].in_features == 5


def test_layer_sizes_follow_the_method():
    net = DFFN(156, 3, 9025, kernel=5, padding=2)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (156, 128, (5, 5)), (128, 64, (5, 5)), (64, 3, (5, 5)), (3, 156, (5, 5))]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(9025, 100), (100, 30), (30, 3)]


def test_spectral_angle_values_and_finite_gradient_at_zero_angle():
    x = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    angle = spectral_angle(x, z)
    assert float(angle[0].detach()) == pytest.approx(0.0, abs=1e-3)
    assert float(angle[1].detach()) == pytest.approx(math.pi / 4, rel=1e-6)
    angle.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_loss_terms():
    torch.manual_seed(0)
    L, P, N = 4, 2, 6
    E = torch.rand(L, P) + 0.1
    A = torch.rand(P, N)
    A = A / A.sum(0)                                   # sums to one: no ASC penalty
    Y2 = E @ A
    # perfect reconstruction, Yhat1 == Yhat2: only the (tiny) clamped angle remains
    assert float(dffn_loss(Y2, A, Y2, E)) < 2e-3
    A_bad = 2 * A                                      # sums to two: ASC = 1
    assert float(dffn_loss(Y2, A_bad, Y2, E, a=0, b=1, c=0)) == pytest.approx(1.0)
    Y = torch.roll(Y2, 1, dims=0)
    Y1 = torch.rand(L, N)
    expected = 0.7 * float(spectral_angle(Y, Y2).mean()) + 0.2 * float(spectral_angle(Y1, Y2).mean())
    assert float(dffn_loss(Y, A, Y1, E, a=0.7, b=0, c=0.2)) == pytest.approx(expected, abs=1e-5)


def test_the_angle_to_the_mixture_is_the_spectral_angle_of_the_product_and_so_is_its_gradient():
    """The loss never forms E @ A; its angles and their gradients are those of the product's."""
    torch.manual_seed(1)
    L, P, N = 30, 4, 50
    X = torch.rand(L, N, dtype=torch.float64)
    E1 = torch.rand(L, P, dtype=torch.float64, requires_grad=True)
    A1 = torch.rand(P, N, dtype=torch.float64, requires_grad=True)
    E2, A2 = E1.detach().clone().requires_grad_(), A1.detach().clone().requires_grad_()
    direct = spectral_angle(X, E1 @ A1)
    direct.sum().backward()
    fast = angle_to_mixture(X, E2, A2, torch.linalg.vector_norm(X, dim=0))
    fast.sum().backward()
    torch.testing.assert_close(fast, direct)
    torch.testing.assert_close(E2.grad, E1.grad)
    torch.testing.assert_close(A2.grad, A1.grad)
    assert float(direct.detach().min()) > 0.05         # the test is not about clamped zeros
    # float32, as training runs: the same angles to within a few microradians
    X32, E32, A32 = X.float(), E1.detach().float(), A1.detach().float()
    assert float((angle_to_mixture(X32, E32, A32) - spectral_angle(X32, E32 @ A32)).abs().max()) < 1e-5


def test_abundances_and_first_reconstruction_stay_float32_under_bfloat16_autocast():
    """The abundance layer and the decoder run in float32 even when the rest is bfloat16: A and
    Yhat1 keep a float32 mantissa (docs/METHOD.md, "Precision"); the wide first layers do not."""
    torch.manual_seed(0)
    net = DFFN(n_bands=12, n_endmembers=3, n_pixels=36, kernel=3, padding=1)
    x = torch.rand(1, 12, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = net.aem[:2](x)
        A, Y1, E = net(x)
    assert hidden.dtype == torch.bfloat16          # the wide layers do take the fast path
    assert A.dtype == torch.float32 and Y1.dtype == torch.float32
    with torch.no_grad():
        A32, Y132, _ = net(x)
    # float32 output layers on bfloat16 features: close to the float32 network, not bit-equal
    assert torch.allclose(A, A32, atol=0.05, rtol=0.05)
    assert not torch.equal(A, A32)


def test_input_projection_is_the_published_layer_on_the_projected_image():
    """With a K x L projection the first convolution keeps its L-band weights and works on the K
    coordinates: its abundances are the published network's on the projected image, and on an image
    that lies in the projection's span they are the published network's, the weights being the same."""
    torch.manual_seed(0)
    L, K, P, H, W = 12, 4, 3, 6, 5
    projection = torch.linalg.qr(torch.rand(L, K, dtype=torch.float64))[0].T.float()   # orthonormal rows
    net = DFFN(L, P, H * W, kernel=3, padding=1, projection=projection).eval()
    published = DFFN(L, P, H * W, kernel=3, padding=1).eval()
    published.load_state_dict({k: v for k, v in net.state_dict().items() if k != "input_projection"})
    assert net.aem[0][0].in_channels == L and net.decoder[0].out_channels == L
    x = torch.rand(1, L, H, W)
    inside = torch.einsum("lk,khw->lhw", projection.T, torch.rand(K, H, W))[None]       # in the span
    with torch.no_grad():
        A, Y1, E = net(x)
        projected = torch.einsum("lk,bkhw->blhw", projection.T, torch.einsum("kl,blhw->bkhw", projection, x))
        torch.testing.assert_close(net.abundance_maps(x), published.abundance_maps(projected))
        torch.testing.assert_close(net.abundance_maps(inside), published.abundance_maps(inside))
        assert not torch.allclose(net.abundance_maps(x), published.abundance_maps(x), atol=1e-3)
    assert Y1.shape == (L, H * W) and E.shape == (L, P)
    assert "input_projection" in net.state_dict()
    with pytest.raises(ValueError, match="K x 12"):
        DFFN(L, P, H * W, projection=torch.rand(K, L + 1))


def test_the_endmember_module_sigmoid_sets_subnormal_numbers_to_zero_and_is_the_sigmoid_elsewhere():
    """Saturated units give float32 subnormal gradients (slow on x86); the module's sigmoid sets those
    (and subnormal outputs) to zero, and is torch's sigmoid, value and gradient, everywhere else."""
    from dffn_qgis.core.method.model import _Sigmoid
    tiny = torch.finfo(torch.float32).tiny
    x = torch.tensor([-86.0, -85.0, -80.0, -20.0, 0.0, 3.0, 40.0])
    upstream = torch.full_like(x, 1e-3)
    ours_x, plain_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, plain = _Sigmoid()(ours_x), torch.sigmoid(plain_x)
    ours.backward(upstream)
    plain.backward(upstream)
    subnormal = (plain_x.grad != 0) & (plain_x.grad.abs() < tiny)
    assert subnormal[:2].all() and not subnormal[2:].any()       # what the plain sigmoid gives
    assert torch.equal(ours_x.grad[:2], torch.zeros(2))
    assert torch.equal(ours_x.grad[2:], plain_x.grad[2:])
    assert torch.equal(ours.detach(), plain.detach())             # no subnormal outputs here
    assert float(_Sigmoid()(torch.tensor([-87.5]))) == 0.0         # torch's would be 1e-38, subnormal
    assert 0 < float(torch.sigmoid(torch.tensor([-87.5]))) < tiny
    net = DFFN(10, 3, 20)
    assert sum(isinstance(m, _Sigmoid) for m in net.eem) == 3
