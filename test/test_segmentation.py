"""Pseudo-label generators (tiny SAM, tiny OneFormer, scikit-image fallback), cache and source."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from selfdc_core.segmentation import (
    LabelCache,
    MissingLabelError,
    MissingWeightsError,
    SegmentSource,
    build_generator,
    paint_masks,
    rank_regions_by_area,
)


def rectangles_image(h=96, w=128):
    """Flat-coloured rectangles on a background, like a synthetic scene without texture."""
    img = np.full((h, w, 3), (40, 40, 40), np.uint8)
    cv2.rectangle(img, (0, 0), (w // 2 - 1, h - 1), (200, 30, 30), -1)  # left half
    cv2.rectangle(img, (w // 2 + 8, 8), (w - 9, h // 2), (30, 200, 30), -1)  # top right
    cv2.rectangle(img, (w // 2 + 20, h // 2 + 16), (w // 2 + 35, h - 12), (30, 30, 220), -1)  # small
    return img


def check_ranked(labels, shape):
    assert labels.dtype == np.int32 and labels.shape == shape
    ids = np.unique(labels[labels > 0])
    assert np.array_equal(ids, np.arange(1, len(ids) + 1))  # consecutive from 1
    areas = np.bincount(labels.ravel())[1:]
    assert np.all(np.diff(areas) <= 0)  # 1 = largest


# ---- ranking and painting ----------------------------------------------------------------


def test_rank_regions_by_area_orders_and_keeps_zero():
    labels = np.array([[7, 7, 7, 0], [3, 3, 9, 0], [9, 9, 9, 9]])
    out = rank_regions_by_area(labels)
    assert out.tolist() == [[2, 2, 2, 0], [3, 3, 1, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match=">= 0"):
        rank_regions_by_area(np.array([[-1, 2]]))
    with pytest.raises(ValueError, match="integer"):
        rank_regions_by_area(np.zeros((2, 2), np.float32))


def test_paint_masks_smaller_masks_win_and_uncovered_is_zero():
    masks = np.zeros((3, 6, 8), bool)
    masks[0, :, :6] = True  # big, area 36
    masks[1, 1:3, 1:3] = True  # small, inside the big one
    masks[2, 0:4, 4:8] = True  # medium, overlaps the big one's right edge
    out = paint_masks(masks)
    assert out[1, 1] == out[2, 2] != out[0, 0]  # the small mask is on top of the big one
    assert out[0, 4] == out[0, 7]  # overlap of big and medium goes to the medium one
    assert (out[4:, 6:] == 0).all()  # nothing covers the bottom right
    check_ranked(out, (6, 8))
    assert out[5, 0] == 1  # the big mask keeps the most visible pixels
    assert paint_masks(np.zeros((0, 5, 4), bool)).shape == (5, 4)


# ---- SAM ------------------------------------------------------------------------------------


def tiny_sam():
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    size, patch, dim = 64, 16, 32
    encoder = ImageEncoderViT(
        img_size=size, patch_size=patch, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0, out_chans=dim
    )
    prompt = PromptEncoder(
        embed_dim=dim,
        image_embedding_size=(size // patch,) * 2,
        input_image_size=(size, size),
        mask_in_chans=4,
    )
    decoder = MaskDecoder(
        transformer_dim=dim,
        transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
        num_multimask_outputs=3,
        iou_head_depth=1,
        iou_head_hidden_dim=16,
    )
    return Sam(encoder, prompt, decoder).eval()


def test_sam_generator_with_tiny_model_follows_the_contract():
    # No quality filters, so the random model yields masks that go through painting and ranking.
    gen = build_generator(
        "sam",
        model=tiny_sam(),
        device="cpu",
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    img = rectangles_image(48, 80)
    labels = gen(img)
    check_ranked(labels, (48, 80))
    records = gen.mask_generator.generate(img)
    assert len(records) > 0
    expected = paint_masks(np.stack([r["segmentation"] for r in records]))
    assert np.array_equal(labels, expected)
    with pytest.raises(ValueError, match="uint8"):
        gen(img.astype(np.float32))


def test_sam_generator_without_masks_returns_all_zero():
    gen = build_generator("sam", model=tiny_sam(), device="cpu", points_per_side=2, pred_iou_thresh=1.5)
    labels = gen(rectangles_image(40, 40))
    assert labels.dtype == np.int32 and labels.shape == (40, 40) and not labels.any()


def test_sam_missing_and_bad_checkpoint(tmp_path):
    path = tmp_path / "weights" / "sam.pth"
    with pytest.raises(MissingWeightsError, match="sam_vit_b_01ec64.pth") as err:
        build_generator("sam", checkpoint=str(path), model_type="vit_b")
    assert str(path) in str(err.value) and "dl.fbaipublicfiles.com/segment_anything" in str(err.value)
    with pytest.raises(MissingWeightsError, match="sam_vit_h_4b8939.pth"):
        build_generator("sam", model_type="vit_h")
    path.parent.mkdir()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="sam.pth"):
        build_generator("sam", checkpoint=str(path), model_type="vit_b")
    with pytest.raises(ValueError, match="model_type"):
        build_generator("sam", checkpoint=str(path), model_type="vit_x")


# ---- OneFormer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_oneformer_dir(tmp_path_factory):
    """A randomly initialised OneFormer + processor saved in the Hugging Face format."""
    from transformers import (
        CLIPTokenizer,
        OneFormerConfig,
        OneFormerForUniversalSegmentation,
        OneFormerImageProcessor,
        OneFormerProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    backbone = SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=2,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    names = {i: f"class{i}" for i in range(5)}
    config = OneFormerConfig(
        backbone_config=backbone,
        num_queries=8,
        hidden_dim=32,
        conv_dim=32,
        mask_dim=32,
        encoder_feedforward_dim=64,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        dim_feedforward=64,
        text_encoder_width=32,
        text_encoder_num_layers=1,
        text_encoder_vocab_size=64,
        text_encoder_context_length=8,
        task_seq_len=8,
        text_encoder_n_ctx=4,
        query_dec_layers=1,
        id2label=names,
        label2id={v: k for k, v in names.items()},
    )
    out = tmp_path_factory.mktemp("oneformer")
    OneFormerForUniversalSegmentation(config).save_pretrained(out)
    image_processor = OneFormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}, num_text=4)
    processor = OneFormerProcessor(image_processor, CLIPTokenizer(), max_seq_length=8, task_seq_length=8)
    processor.save_pretrained(out)
    # Official models name a class-info file on the Hub; the generator must not try to fetch it.
    cfg_path = out / "processor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["image_processor"].update(class_info_file="ade20k_panoptic.json", repo_path="shi-labs/oneformer_demo")
    cfg_path.write_text(json.dumps(cfg))
    return out


def test_oneformer_semantic_gives_class_plus_one(tiny_oneformer_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = build_generator("oneformer", model_dir=str(tiny_oneformer_dir), task="semantic", device="cpu")
    img = rectangles_image(48, 80)
    labels = gen(img)
    assert labels.dtype == np.int32 and labels.shape == (48, 80)
    assert labels.min() >= 1 and labels.max() <= 5  # class ids 0..4 shifted by one; 0 stays free
    inputs = gen.processor(images=img, task_inputs=["semantic"], return_tensors="pt")
    with torch.no_grad():
        logits = gen.model(**inputs)
    classes = gen.processor.post_process_semantic_segmentation(logits, target_sizes=[(48, 80)])[0]
    assert np.array_equal(labels, classes.numpy() + 1)


def test_oneformer_panoptic_is_ranked(tiny_oneformer_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = build_generator(
        "oneformer", model_dir=tiny_oneformer_dir, task="panoptic", device="cpu", threshold=0.0
    )
    # Random weights vote "no object" everywhere; favour real classes so segments appear.
    with torch.no_grad():
        bias = gen.model.model.transformer_module.decoder.class_embed.bias
        bias[:], bias[0] = -5.0, 5.0
    labels = gen(rectangles_image(48, 80))
    check_ranked(labels, (48, 80))
    assert labels.max() >= 1


def test_oneformer_missing_directory_says_what_to_download(tmp_path):
    missing = tmp_path / "oneformer_ade20k"
    with pytest.raises(MissingWeightsError, match="shi-labs/oneformer_ade20k_swin_tiny") as err:
        build_generator("oneformer", model_dir=missing)
    assert str(missing) in str(err.value) and "save_pretrained" in str(err.value)
    missing.mkdir()
    (missing / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="safetensors"):
        build_generator("oneformer", model_dir=missing)
    with pytest.raises(ValueError, match="task"):
        build_generator("oneformer", model_dir=missing, task="instance")


# ---- weight-free fallback ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["felzenszwalb", "fallback", "slic"])
def test_fallback_regions_follow_rectangles(name):
    img = rectangles_image()
    cfg = {"n_segments": 12} if name == "slic" else {}
    labels = build_generator(name, **cfg)(img)
    check_ranked(labels, img.shape[:2])
    assert (labels > 0).all()  # these generators label every pixel
    # Regions follow the rectangles: nearly every pixel has its region's majority colour ...
    colours = np.unique(img.reshape(-1, 3), axis=0, return_inverse=True)[1].reshape(labels.shape)
    joint = np.zeros((labels.max() + 1, colours.max() + 1), np.int64)
    np.add.at(joint, (labels.ravel(), colours.ravel()), 1)
    assert joint.max(axis=1).sum() >= 0.95 * labels.size
    if name != "slic":  # ... and graph segmentation gives each rectangle one dominant region
        dominant = joint.argmax(axis=0)
        assert len(set(dominant.tolist())) == 4
        assert (joint.max(axis=0) >= 0.6 * joint.sum(axis=0)).all()
        assert labels[10, 10] == 1  # the left half is the largest region


def test_unknown_generator_and_bad_parameters():
    with pytest.raises(ValueError, match="felzenszwalb"):
        build_generator("mask2former")
    with pytest.raises(ValueError, match="scale"):
        build_generator("felzenszwalb", scale=-1)


# ---- cache -------------------------------------------------------------------------------------


def test_cache_round_trip_mirrors_keys(tmp_path):
    cache = LabelCache(tmp_path)
    labels = np.array([[0, 1, 2], [300, 65535, 7]], np.int32)
    key = "train/scene_0001/00042"
    assert not cache.exists(key)
    assert cache.save(key, labels) == tmp_path / "train" / "scene_0001" / "00042.png"
    assert cache.exists(key)
    loaded = cache.load(key)
    assert loaded.dtype == np.uint16 and np.array_equal(loaded, labels)
    assert sorted(p.name for p in (tmp_path / "train" / "scene_0001").iterdir()) == ["00042.png"]  # no temp
    with pytest.raises(ValueError, match="65535"):
        cache.save("big", np.array([[70000]]))
    with pytest.raises(ValueError, match="relative"):
        cache.path("../escape")


def test_cache_rejects_bad_pngs(tmp_path):
    cache = LabelCache(tmp_path)
    cv2.imwrite(str(tmp_path / "eight.png"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(tmp_path / "colour.png"), np.zeros((4, 4, 3), np.uint16))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for key, message in [("eight", "8-bit"), ("colour", "3 channels"), ("corrupt", "cannot decode")]:
        with pytest.raises(ValueError, match=message) as err:
            cache.load(key)
        assert f"{key}.png" in str(err.value) and "16-bit" in str(err.value)
    with pytest.raises(FileNotFoundError):
        cache.load("absent")


# ---- SegmentSource ----------------------------------------------------------------------------


def test_source_reads_cache_then_fallback_then_errors(tmp_path):
    img = rectangles_image(32, 40)
    cache = LabelCache(tmp_path)
    cache.save("a/1", np.full((32, 40), 3))
    source = SegmentSource(cache_root=tmp_path)
    got = source.get("a/1", img)
    assert got.dtype == np.int64 and (got == 3).all()

    with pytest.raises(MissingLabelError) as err:
        SegmentSource(cache_root=tmp_path, config_path="config/nyu.yaml", split="train").get("a/2", img)
    message = str(err.value)
    assert str(tmp_path / "a" / "2.png") in message
    assert (
        f"python training/make_masks.py --config config/nyu.yaml --split train --cache-root {tmp_path}"
        in message
    )
    assert isinstance(err.value, FileNotFoundError)

    fallback = SegmentSource(cache_root=tmp_path, fallback="felzenszwalb")
    assert (fallback.get("a/1", img) == 3).all()  # the cache still wins
    on_the_fly = fallback.get("a/2", img)
    assert on_the_fly.dtype == np.int64 and on_the_fly.shape == (32, 40) and on_the_fly.min() >= 1
    assert not cache.exists("a/2")
    calls = SegmentSource(fallback=lambda rgb: np.ones(rgb.shape[:2], np.int32)).get("x", img)
    assert (calls == 1).all()


def test_source_shape_mismatch_and_config_errors(tmp_path):
    LabelCache(tmp_path).save("k", np.ones((10, 10), np.int32))
    with pytest.raises(ValueError, match=r"\(10, 10\).*\(32, 40\)") as err:
        SegmentSource(cache_root=tmp_path).get("k", rectangles_image(32, 40))
    assert "k.png" in str(err.value)
    with pytest.raises(ValueError, match="cache_root"):
        SegmentSource()
