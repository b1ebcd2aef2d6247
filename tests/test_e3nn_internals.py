"""The e3nn internals the fused kernels rely on (``e3hier.network.fused.e3nn_internals``): present, or a loud
failure."""

import e3nn
import pytest
from e3nn import o3

from e3hier.network.fused import e3nn_internals
from e3hier.network.fused.e3nn_internals import E3nnInternalsChanged, check_internals


def test_the_installed_e3nn_has_every_internal_the_fused_kernels_use():
    check_internals()


def test_a_missing_internal_names_the_attribute_and_the_e3nn_version(monkeypatch):
    monkeypatch.delattr(o3.TensorProduct, "_get_weights")
    with pytest.raises(E3nnInternalsChanged, match=rf"e3nn {e3nn.__version__}.*'_get_weights'"):
        check_internals()


def test_changed_convolution_children_fail_loudly(monkeypatch):
    monkeypatch.setattr(e3nn_internals, "CONVOLUTION_CHILDREN", ("sc", "lin1", "tp", "fc", "lin2"))
    with pytest.raises(E3nnInternalsChanged, match="children"):
        check_internals()
