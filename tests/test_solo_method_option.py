"""The ``method_kwargs.w2_method`` cfg key of the solo-learn adapter (current solo-learn)."""

from __future__ import annotations

import pytest

try:
    import w2reg.adapters.solo as solo
except ImportError as err:  # not installed, or an unsupported version
    pytest.skip(str(err), allow_module_level=True)
if solo.SOLO_API != "cfg":
    pytest.skip("needs current solo-learn (Hydra/cfg API)", allow_module_level=True)


def test_solo_cfg_key_w2_method() -> None:
    from omegaconf import OmegaConf

    cfg = solo.add_and_assert_w2_cfg(OmegaConf.create({"method_kwargs": {}}))
    assert cfg.method_kwargs.w2_method == "auto"
    cfg = OmegaConf.create({"method_kwargs": {"w2_method": "iterative"}})
    assert solo.add_and_assert_w2_cfg(cfg).method_kwargs.w2_method == "iterative"
    bad = OmegaConf.create({"method_kwargs": {"w2_method": "svd"}})
    with pytest.raises(ValueError, match=r"method_kwargs.w2_method must be one of .*'svd'"):
        solo.add_and_assert_w2_cfg(bad)


def test_solo_model_uses_the_cfg_method() -> None:
    import test_solo_adapter as tsa
    from solo.methods import METHODS

    solo.register()
    tsa.solo_base.BaseMethod._BACKBONES[tsa.TINY] = tsa.tiny_backbone
    try:
        model = METHODS["byol_w2"](tsa.make_cfg("byol_w2", w2_method="iterative"))
        assert model.w2reg.loss.method == "iterative"
        assert METHODS["byol_w2"](tsa.make_cfg("byol_w2")).w2reg.loss.method == "auto"
    finally:
        tsa.solo_base.BaseMethod._BACKBONES.pop(tsa.TINY, None)
