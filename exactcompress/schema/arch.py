"""``NAME.arch.json``: the architecture of a state dict (``NAME.pt`` / ``NAME.safetensors``) that its tensors
cannot tell, such as a convolution's stride and padding (since report schema 1.4).

Layers are listed in order, as the modules of an ``nn.Sequential``; ``key`` is the module's prefix in the
state dict (``features.0`` for ``features.0.weight``). Channel counts and kernel sizes come from the
tensors; where the file gives them too they must agree.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator

from .common import Strict

ARCH_SCHEMA_VERSION = "1.2"  # 1.1: avgpool2d ceil_mode, count_include_pad, divisor_override; 1.2: adaptiveavgpool2d
#: ``NAME.pt`` → ``NAME.arch.json``
ARCH_SUFFIX = ".arch.json"

IntOrPair = Union[Annotated[int, Field(ge=0)], Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2,
                                                                                                    max_length=2)]]
#: a kernel size or stride: one int or an (h, w) pair, each >= 1
PositiveIntOrPair = Union[Annotated[int, Field(ge=1)],
                          Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2)]]


class Conv2dLayer(Strict):
    """``nn.Conv2d`` (dilation 1, groups 1, zero padding); bias read from ``KEY.bias`` when present."""

    kind: Literal["conv2d"]
    key: str = Field(description="module prefix in the state dict: KEY.weight (out, in, kh, kw), KEY.bias")
    out_channels: int | None = Field(None, ge=1, description="checked against KEY.weight when given")
    kernel_size: PositiveIntOrPair | None = Field(None, description="checked against KEY.weight when given")
    stride: PositiveIntOrPair = 1
    padding: IntOrPair = 0


class BatchNorm2dLayer(Strict):
    """``nn.BatchNorm2d`` in eval mode (running statistics), folded into the convolution before it."""

    kind: Literal["batchnorm2d"]
    key: str
    eps: float = Field(1e-5, gt=0)


class BatchNorm1dLayer(Strict):
    """``nn.BatchNorm1d`` in eval mode, folded into the Linear before it."""

    kind: Literal["batchnorm1d"]
    key: str
    eps: float = Field(1e-5, gt=0)


class ReluLayer(Strict):
    kind: Literal["relu"]


class FlattenLayer(Strict):
    kind: Literal["flatten"]


class AvgPool2dLayer(Strict):
    """``nn.AvgPool2d`` after a ReLU, followed by ``flatten`` and ``linear`` (composed into that Linear); the
    defaults are torch's."""

    kind: Literal["avgpool2d"]
    kernel_size: PositiveIntOrPair
    stride: PositiveIntOrPair | None = Field(None, description="default: kernel_size")
    padding: IntOrPair = 0
    ceil_mode: bool = Field(False, description="round the output size up (since 1.1)")
    count_include_pad: bool = Field(True, description="divide by the whole window, padding included (since 1.1)")
    divisor_override: int | None = Field(None, ge=1, description="divide every window by this (since 1.1)")


class AdaptiveAvgPool2dLayer(Strict):
    """``nn.AdaptiveAvgPool2d`` after a ReLU, followed by ``flatten`` and ``linear`` (composed into that Linear; since
    1.2)."""

    kind: Literal["adaptiveavgpool2d"]
    output_size: Union[int, list[int | None]] = Field(
        description="an int >= 1, or [h, w] of ints >= 1 where null keeps that side of the input")

    @field_validator("output_size", mode="before")
    @classmethod
    def _int_or_pair(cls, value: object) -> object:
        """One message for every wrong shape (a union's own errors name an inner type)."""

        def positive(side: object) -> bool:
            return isinstance(side, int) and not isinstance(side, bool) and side >= 1

        if positive(value) or (isinstance(value, list) and len(value) == 2
                               and all(side is None or positive(side) for side in value)):
            return value
        raise ValueError(f"{value!r} is not an int >= 1 or [h, w] of ints >= 1 (null keeps that side)")


class LinearLayer(Strict):
    """``nn.Linear``: KEY.weight (out, in), KEY.bias when present."""

    kind: Literal["linear"]
    key: str


ArchLayer = Annotated[
    Union[Conv2dLayer, BatchNorm2dLayer, BatchNorm1dLayer, ReluLayer, FlattenLayer, AvgPool2dLayer,
          AdaptiveAvgPool2dLayer, LinearLayer],
    Field(discriminator="kind"),
]


class ArchFile(Strict):
    """The architecture file of a state dict: one input's shape and the layers in order."""

    schema_version: str = ARCH_SCHEMA_VERSION
    input_shape: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=1, max_length=3, description="(C, H, W) of one input, or (features,) for an MLP")
    layers: list[ArchLayer] = Field(min_length=1)

    @field_validator("schema_version")
    @classmethod
    def _known_major_version(cls, version: str) -> str:
        """Versions of another major (an incompatible format) are refused."""
        if version.split(".")[0] != ARCH_SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"version '{version}' is not supported; this release reads "
                             f"{ARCH_SCHEMA_VERSION.split('.')[0]}.x")
        return version
