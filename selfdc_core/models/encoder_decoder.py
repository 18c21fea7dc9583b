"""NLSPN's early-fusion encoder, transposed-convolution decoder and full-resolution heads.

Resolutions (input padded to a multiple of ENCODER_STRIDE): the fused input convs and ResNet layer1
run at full resolution (NLSPN drops ResNet's stem, so layer1 keeps stride 1); layer2, layer3, layer4
and the extra stride-2 block are at 1/2, 1/4, 1/8 and 1/16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import build_resnet
from .blocks import conv_bn_relu, convt_bn_relu

ENCODER_STRIDE = 16
RGB_CHANNELS, SPARSE_CHANNELS = 48, 16
# Channels of the six encoder features: fused input, layer1..layer4, extra block.
ENCODER_CHANNELS = (RGB_CHANNELS + SPARSE_CHANNELS, 64, 128, 256, 512, 512)


class EarlyFusionEncoder(nn.Module):
    """RGB conv 3->48 and sparse conv 1->16, concatenated, then ResNet layer1-4 and one stride-2 block."""

    def __init__(self, backbone: str = "resnet34", pretrained: bool = False):
        super().__init__()
        # As in NLSPN, the two input convolutions have no BatchNorm (the sparse map is mostly zeros).
        self.rgb_conv = conv_bn_relu(3, RGB_CHANNELS, bn=False)
        self.sparse_conv = conv_bn_relu(1, SPARSE_CHANNELS, bn=False)
        resnet = build_resnet(backbone, pretrained)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        self.extra = conv_bn_relu(ENCODER_CHANNELS[4], ENCODER_CHANNELS[5], stride=2)

    def forward(self, rgb: Tensor, sparse: Tensor) -> list[Tensor]:
        """Normalised inputs -> features [fused, layer1, layer2, layer3, layer4, extra] at strides
        1, 1, 2, 4, 8, 16."""
        feats = [torch.cat((self.rgb_conv(rgb), self.sparse_conv(sparse)), dim=1)]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4, self.extra):
            feats.append(stage(feats[-1]))
        return feats


class Decoder(nn.Module):
    """Transposed convolutions from 1/16 back to full resolution, concatenating the encoder skips."""

    out_channels = 64

    def __init__(self):
        super().__init__()
        c = ENCODER_CHANNELS
        self.up8 = convt_bn_relu(c[5], 256)  # 1/16 -> 1/8
        self.up4 = convt_bn_relu(256 + c[4], 128)  # 1/8 -> 1/4
        self.up2 = convt_bn_relu(128 + c[3], 64)  # 1/4 -> 1/2
        self.up1 = convt_bn_relu(64 + c[2], self.out_channels)  # 1/2 -> 1

    def forward(self, feats: list[Tensor]) -> Tensor:
        x = self.up8(feats[5])
        x = self.up4(torch.cat((x, feats[4]), dim=1))
        x = self.up2(torch.cat((x, feats[3]), dim=1))
        return self.up1(torch.cat((x, feats[2]), dim=1))


class Head(nn.Module):
    """Two 3x3 convs with the layer1 and fused-input skips (NLSPN's *_dec1, *_dec0), at full resolution.

    With `half_resolution`, the first conv has stride 2, the fused-input skip is average-pooled to
    match, and the output is upsampled bilinearly: about a quarter of the head's cost, with the same
    weights. The last conv has no BN or ReLU: the caller applies the output activation.
    """

    def __init__(self, out_channels: int, hidden: int = 64, half_resolution: bool = False):
        super().__init__()
        self.stride = 2 if half_resolution else 1
        self.hidden = conv_bn_relu(Decoder.out_channels + ENCODER_CHANNELS[1], hidden, stride=self.stride)
        self.out = conv_bn_relu(hidden + ENCODER_CHANNELS[0], out_channels, bn=False, relu=False)

    def forward(self, x: Tensor, feats: list[Tensor]) -> Tensor:
        x = self.hidden(torch.cat((x, feats[1]), dim=1))
        if self.stride == 1:
            return self.out(torch.cat((x, feats[0]), dim=1))
        y = self.out(torch.cat((x, F.avg_pool2d(feats[0], self.stride)), dim=1))
        return F.interpolate(y, scale_factor=float(self.stride), mode="bilinear", align_corners=False)


class SegmentationBranch(nn.Module):
    """Same structure as the depth decoder, with its own weights and a C-class logits head."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.decoder = Decoder()
        self.head = Head(num_classes)

    def forward(self, feats: list[Tensor]) -> Tensor:
        return self.head(self.decoder(feats), feats)
