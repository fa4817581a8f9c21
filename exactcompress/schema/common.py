"""What every schema shares: the strict base model, the literal types, schema versions and model suffixes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

REPORT_SCHEMA_VERSION = "1.14"
JOB_SCHEMA_VERSION = "1.4"
SUMMARY_SCHEMA_VERSION = "1.4"
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".onnx")
#: a valid S3 bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)
S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def checked_location(value: str) -> str:
    """A storage location as a spec gives it; an ``s3://`` URL must name a valid bucket (ValueError)."""
    if value.startswith("s3://"):
        bucket = value[len("s3://"):].split("/", 1)[0]
        if not S3_BUCKET.fullmatch(bucket):
            raise ValueError(f"'{bucket}' is not a valid S3 bucket name (3-63 of a-z 0-9 . -)")
    return value

Method = Literal["auto", "per-neuron", "milp", "bab"]
Device = Literal["auto", "cpu", "cuda"]
Status = Literal["exact", "partial", "failed"]
SaveFormat = Literal["torch", "safetensors", "onnx"]
Settler = Literal["bounds", "witnesses", "per-neuron", "single-milp", "bab"]
ErrorKind = Literal["input", "solver", "soundness", "verification", "internal"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
