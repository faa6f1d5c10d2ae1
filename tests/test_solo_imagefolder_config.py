"""The shipped solo-learn data config ``data=imagefolder`` (solo-learn's ``custom`` dataset).

Composed with Hydra and validated by solo-learn's own ``parse_cfg`` on image folders that
examples/export_imagefolder.py writes from a tiny Fashion-MNIST. Skipped where current
solo-learn (the Hydra/cfg API) is not installed.
"""

from __future__ import annotations

import fashion_mnist_fixture
import pytest
from example_scripts import load_example

try:
    import w2reg.adapters.solo as ws
except ImportError as err:  # not installed, not importable, or an unsupported version
    pytest.skip(str(err), allow_module_level=True)
if ws.SOLO_API != "cfg":
    pytest.skip("current solo-learn (Hydra/cfg API) is not installed", allow_module_level=True)

from omegaconf import OmegaConf  # noqa: E402
from omegaconf.errors import MissingMandatoryValue  # noqa: E402

from w2reg.adapters import solo_pretrain  # noqa: E402


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from solo.args.pretrain import parse_cfg

    with initialize_config_dir(config_dir=str(solo_pretrain.CONFIG_DIR), version_base="1.2"):
        cfg = compose(config_name="byol_w2", overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    return parse_cfg(cfg)


def test_imagefolder_config_on_exported_fashion_mnist(tmp_path, monkeypatch):
    data = load_example("_datasets")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    source = fashion_mnist_fixture.write(tmp_path / "fmnist", n_train=40, n_test=20)
    out = tmp_path / "folders"
    load_example("export_imagefolder").main(
        ["--dataset", "fashion-mnist", "--data-dir", str(source), "--out", str(out)]
    )
    cfg = _compose(
        ["data=imagefolder", f"data.train_path={out / 'train'}", f"data.val_path={out / 'test'}"]
    )
    assert cfg.data.dataset == "custom" and cfg.data.format == "image_folder"
    assert cfg.data.num_classes == 10  # solo-learn counts the class folders
    assert cfg.method == "byol_w2" and cfg.data.num_large_crops == 2


def test_imagefolder_config_needs_both_paths():
    with pytest.raises(MissingMandatoryValue, match="train_path"):
        _compose(["data=imagefolder", "data.val_path=null"])
