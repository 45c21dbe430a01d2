"""Evaluation: matting metrics (SAD, MSE, MAD, Grad, Conn, IoU, IMQ, NoC) and the DFIMat user simulator."""

from models.eval.metrics import (
    IMQResult,
    conn,
    grad,
    imq,
    iou,
    mad,
    matting_errors,
    mse,
    noc,
    noc_at,
    sad,
    unknown_region,
)
from models.eval.protocols import PROTOCOLS, ProtocolSpec, get_protocol
from models.eval.simulator import SimulationResult, UserSimulator, aggregate_rounds, error_regions, gt_box

__all__ = [
    "PROTOCOLS",
    "IMQResult",
    "ProtocolSpec",
    "SimulationResult",
    "UserSimulator",
    "aggregate_rounds",
    "conn",
    "error_regions",
    "get_protocol",
    "grad",
    "gt_box",
    "imq",
    "iou",
    "mad",
    "matting_errors",
    "mse",
    "noc",
    "noc_at",
    "sad",
    "unknown_region",
]
