"""What every schema shares: the strict base model, the literal types, schema versions and model suffixes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

REPORT_SCHEMA_VERSION = "1.3"
JOB_SCHEMA_VERSION = "1.3"
SUMMARY_SCHEMA_VERSION = "1.1"
MODEL_SUFFIXES = (".pt", ".pth", ".safetensors", ".onnx")

Method = Literal["auto", "per-neuron", "milp", "bab"]
Device = Literal["auto", "cpu", "cuda"]
Status = Literal["exact", "partial", "failed"]
SaveFormat = Literal["torch", "safetensors", "onnx"]
Settler = Literal["bounds", "witnesses", "per-neuron", "single-milp", "bab"]
ErrorKind = Literal["input", "solver", "soundness", "verification", "internal"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
