import doctest

import pytest
import torch

from semstyle.core import aligned
from semstyle.losses.strotss import feature_moments, moment_loss, self_similarity_loss


def test_the_examples_in_the_docstrings_hold():
    assert doctest.testmod(aligned).failed == 0


def test_products_match_the_plain_ones_and_write_aligned_rows():
    torch.manual_seed(0)
    a, b, c = torch.randn(37, 53), torch.randn(53, 2179), torch.randn(37, 2179)
    out = aligned.mm(a, b)
    assert out.shape == (37, 2179) and out.stride() == (2192, 1)
    torch.testing.assert_close(out, a @ b)
    out = aligned.addmm(c, a, b, beta=-1.0, alpha=0.5)
    assert out.stride() == (2192, 1)
    torch.testing.assert_close(out, torch.addmm(c, a, b, beta=-1.0, alpha=0.5))


@pytest.mark.parametrize("case", ["aligned width", "bf16", "needs a gradient"])
def test_plain_product_where_padding_would_not_help_or_cannot_be_differentiated(case):
    a, b = torch.randn(8, 5), torch.randn(5, 2179)
    if case == "aligned width":
        b = torch.randn(5, 2192)
    elif case == "bf16":
        a, b = a.bfloat16(), b.bfloat16()
    else:
        a.requires_grad_(True)
    out = aligned.mm(a, b)
    assert out.is_contiguous()
    if case == "needs a gradient":
        out.sum().backward()  # out= would have raised
        assert a.grad.shape == a.shape


def test_padded_columns_change_no_dot_product_and_pass_the_gradient_back():
    x = torch.randn(6, 2179, requires_grad=True)
    padded = aligned.pad_columns(x)
    assert padded.shape == (6, 2192)
    torch.testing.assert_close(padded @ padded.T, x @ x.T)
    (padded @ padded.T).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach().sum(0).expand(6, -1))  # d/dx_k of Σ_ij <x_i, x_j>
    assert aligned.pad_columns(torch.randn(6, 64)).shape == (6, 64)


def test_strotss_terms_are_the_same_with_and_without_aligned_rows(monkeypatch):
    torch.manual_seed(0)
    x, content = torch.randn(300, 2179).relu(), torch.randn(300, 2179).relu()
    moments = feature_moments(torch.randn(500, 2179))

    def value_and_gradient():
        results = []
        for term in (lambda v: moment_loss(v, moments), lambda v: self_similarity_loss(v, content)):
            leaf = x.clone().requires_grad_(True)
            value = term(leaf)
            value.backward()
            results.append((value.detach(), leaf.grad))
        return results

    fast = value_and_gradient()
    monkeypatch.setattr(aligned, "_helps", lambda like, cols: False)
    plain = value_and_gradient()
    for (v, g), (v0, g0) in zip(fast, plain):
        torch.testing.assert_close(v, v0, rtol=1e-5, atol=0)
        torch.testing.assert_close(g, g0, rtol=1e-4, atol=1e-9)


def test_the_search_finds_the_same_neighbours_in_an_odd_width(monkeypatch):
    from semstyle.core.search import nearest_rows

    torch.manual_seed(0)
    x, y = torch.randn(200, 67), torch.randn(1237, 67)
    fast = nearest_rows(x, y, columns=True, chunk_entries=200 * 501)  # chunks of 501, 501 and 235 rows
    monkeypatch.setattr(aligned, "_helps", lambda like, cols: False)
    plain = nearest_rows(x, y, columns=True, chunk_entries=200 * 501)
    assert torch.equal(fast[0], plain[0]) and torch.equal(fast[2], plain[2])
    torch.testing.assert_close(fast[1], plain[1])
