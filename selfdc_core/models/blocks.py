"""Convolution building blocks shared by the encoder, the decoders and the heads."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(
    in_ch: int, out_ch: int, stride: int = 1, bn: bool = True, relu: bool = True
) -> nn.Sequential:
    """3x3 convolution (padding 1), optional BatchNorm, optional ReLU.

    The bias is dropped when BatchNorm follows, since BN's shift makes it redundant.
    """
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(out_ch))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def convt_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 transposed convolution that exactly doubles height and width, then BN and ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )
