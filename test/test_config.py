"""Training configs: every shipped file loads, overrides are typed, unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selfdc_core.data.factory import build_dataset, dataset_kwargs
from selfdc_core.losses import SelfDCLoss
from selfdc_core.training.config import DEFAULTS, load_config, save_config
from selfdc_core.training.schedule import lr_factor

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "config"


def _training_configs() -> list[Path]:
    """YAML files under config/ that are training configs (node parameter files are not)."""
    files = sorted(CONFIG_DIR.glob("*.yaml")) + sorted((CONFIG_DIR / "ablations").glob("*.yaml"))
    out = []
    for path in files:
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict) and ({"data", "base", "train"} & set(data)):
            out.append(path)
    return out


TRAINING_CONFIGS = _training_configs()


def test_expected_training_configs_exist():
    names = {p.relative_to(CONFIG_DIR).as_posix() for p in TRAINING_CONFIGS}
    assert {"train_nyu.yaml", "train_kitti.yaml", "train_synthetic.yaml"} <= names
    expected_rows = {"table3": 8, "table4": 6, "table5": 4, "table6": 2}
    for table, rows in expected_rows.items():
        for row in range(1, rows + 1):
            assert f"ablations/{table}_row{row}.yaml" in names


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_every_training_config_loads_and_builds_its_loss(path):
    cfg = load_config(path)
    assert "base" not in cfg
    assert set(cfg) == set(DEFAULTS)
    loss = SelfDCLoss(**cfg["loss"])
    assert loss.config["w_dc"] > 0


def test_paper_defaults_and_nlspn_schedule():
    cfg = load_config(CONFIG_DIR / "train_nyu.yaml")
    assert cfg["optim"]["lr"] == pytest.approx(1e-3)
    assert cfg["optim"]["betas"] == [0.9, 0.999]
    assert cfg["model"]["backbone"] == "resnet34"
    assert cfg["train"]["epochs"] == 20
    assert cfg["train"]["mode"] == "self_supervised"
    sched, spe = cfg["schedule"], 100
    assert lr_factor(0, spe, sched) == pytest.approx(1 / 100)  # warm-up over the first epoch
    assert lr_factor(500, spe, sched) == pytest.approx(1.0)
    assert lr_factor(1000, spe, sched) == pytest.approx(0.2)  # NLSPN: x0.2 from epoch 10
    assert lr_factor(1600, spe, sched) == pytest.approx(0.04)  # x0.04 from epoch 15


def test_kitti_config_matches_the_paper_setup():
    cfg = load_config(CONFIG_DIR / "train_kitti.yaml")
    assert cfg["data"]["train"]["crop"] == [240, 1216]
    assert cfg["data"]["train"]["filter_noise"] is True
    assert cfg["segmentation"]["generator"] == "oneformer"
    assert cfg["data"]["max_depth"] == 80.0


def test_ablation_rows_set_what_their_tables_vary():
    t3r1 = load_config(CONFIG_DIR / "ablations/table3_row1.yaml")
    assert (t3r1["loss"]["w_seg"], t3r1["loss"]["w_sms"], t3r1["loss"]["w_gc"]) == (0, 0, 0)
    assert t3r1["model"]["include_segmentation"] is False
    t3r8 = load_config(CONFIG_DIR / "ablations/table3_row8.yaml")
    assert min(t3r8["loss"]["w_seg"], t3r8["loss"]["w_sms"], t3r8["loss"]["w_gc"]) > 0
    def loss_key(name, key):
        return load_config(CONFIG_DIR / f"ablations/{name}.yaml")["loss"][key]

    windows = [loss_key(f"table4_row{r}", "gc_window") for r in range(1, 7)]
    assert windows == ["full", 128, 64, 16, 8, 8]
    assert load_config(CONFIG_DIR / "ablations/table4_row6.yaml")["loss"]["gc_basis"] == "image"
    smooth = [loss_key(f"table5_row{r}", "smoothness") for r in range(1, 5)]
    assert smooth == ["edge_aware", "mask_based", "mask_aware", "sms"]
    assert load_config(CONFIG_DIR / "ablations/table6_row1.yaml")["loss"]["aux"] == "image"
    # Inherited, untouched sections come from the base file.
    assert t3r1["data"] == load_config(CONFIG_DIR / "train_nyu.yaml")["data"]


def test_overrides_are_yaml_typed():
    cfg = load_config(
        CONFIG_DIR / "train_nyu.yaml",
        ["train.epochs=3", "optim.lr=1e-4", "optim.betas=[0.8,0.9]", "data.val=null", "init=ck.pt",
         "model.backbone=resnet18", "train.amp=false", "loss.gc_window=full"],
    )
    assert cfg["train"]["epochs"] == 3
    assert cfg["optim"]["lr"] == pytest.approx(1e-4) and isinstance(cfg["optim"]["lr"], float)
    assert cfg["optim"]["betas"] == [0.8, 0.9]
    assert cfg["data"]["val"] is None
    assert cfg["init"] == "ck.pt"
    assert cfg["model"]["backbone"] == "resnet18"
    assert cfg["train"]["amp"] is False
    assert cfg["loss"]["gc_window"] == "full"


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.epoch=5", "train.epoch"),
        ("trian.epochs=5", "trian"),
        ("optim.learning_rate=0.1", "optim.learning_rate"),
        ("model.backbon=resnet18", "model.backbon"),
        ("loss.w_gcc=1", "w_gcc"),
        ("data.train.rooot=x", "data.train.rooot"),
        ("segmentation.cache=x", "segmentation.cache"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(override, named):
    with pytest.raises(ValueError, match="unknown") as err:
        load_config(CONFIG_DIR / "train_nyu.yaml", [override])
    assert named in str(err.value)
    assert "valid keys" in str(err.value)


def test_unknown_key_in_a_file_and_bad_types(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {CONFIG_DIR / 'train_nyu.yaml'}\ntrain: {{batchsize: 4}}\n")
    with pytest.raises(ValueError, match="train.batchsize"):
        load_config(bad)
    with pytest.raises(ValueError, match="train.epochs"):
        load_config(CONFIG_DIR / "train_nyu.yaml", ["train.epochs=many"])
    with pytest.raises(ValueError, match="train.mode"):
        load_config(CONFIG_DIR / "train_nyu.yaml", ["train.mode=unsupervised"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(CONFIG_DIR / "train_nyu.yaml", ["train.epochs"])
    with pytest.raises(ValueError, match="unknown dataset"):
        load_config(CONFIG_DIR / "train_nyu.yaml", ["data.train.name=nyuv3"])


def test_base_chain_and_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text(f"base: {CONFIG_DIR / 'train_nyu.yaml'}\ntrain: {{epochs: 7}}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ntrain: {batch_size: 3}\nloss: {gc_window: 16}\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg["train"]["epochs"], cfg["train"]["batch_size"], cfg["loss"]["gc_window"]) == (7, 3, 16)
    assert cfg["loss"]["w_seg"] == pytest.approx(0.1)  # merged, not replaced
    (tmp_path / "c.yaml").write_text("base: d.yaml\n")
    (tmp_path / "d.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(CONFIG_DIR / "train_kitti.yaml", ["train.epochs=2", "optim.lr=5e-4"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_factory_keeps_ground_truth_out_of_self_supervised_training():
    spec = {"name": "nyu", "root": "nowhere"}
    seg = {"cache_root": "masks", "fallback": None}
    train = dataset_kwargs(spec, "train", with_gt=False, segments=seg)
    assert train["with_gt"] is False and train["split"] == "train" and train["segments_root"] == "masks"
    val = dataset_kwargs(spec, "val", segments=seg)
    assert val["with_gt"] is True and "segments_root" not in val
    sup = dataset_kwargs(spec, "train", with_gt=True)
    assert sup["with_gt"] is True and "segments_root" not in sup
    with pytest.raises(ValueError, match="reads no ground truth"):
        dataset_kwargs({**spec, "with_gt": True}, "train", with_gt=False, segments=seg)
    with pytest.raises(ValueError, match="data.train.bogus"):
        dataset_kwargs({**spec, "bogus": 1}, "train")


def test_factory_surfaces_the_dataset_missing_root_error_unchanged(tmp_path):
    from selfdc_core.data import NYUDepthV2

    root = tmp_path / "no_such_nyu"
    with pytest.raises(Exception) as direct:
        NYUDepthV2(root=root, split="train", with_gt=False)
    with pytest.raises(type(direct.value)) as via_factory:
        build_dataset({"train": {"name": "nyu", "root": str(root)}}, "train")
    assert str(via_factory.value) == str(direct.value)
    assert str(root) in str(via_factory.value)


def test_every_train_mode_has_an_objective():
    from selfdc_core.training.config import TRAIN_MODES
    from selfdc_core.training.objective import OBJECTIVES, build_objective

    assert set(TRAIN_MODES) == set(OBJECTIVES)
    cfg = load_config(CONFIG_DIR / "train_nyu.yaml", ["train.mode=supervised"])
    assert build_objective(cfg).reads_gt and not build_objective(cfg).needs_segments
    assert not build_objective(load_config(CONFIG_DIR / "train_nyu.yaml")).reads_gt
