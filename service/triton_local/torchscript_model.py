"""Triton Python-backend model that runs a TorchScript file the way the libtorch backend does.

`repository.build_python_repository` copies this file as `<model>/<version>/model.py` next
to a `model.pt` symlink. It runs inside the backend stub process, so it imports nothing
from matteserve. Conventions of Triton's PyTorch backend that it follows:

- inputs named like the arguments of `forward` are passed by name; otherwise inputs named
  `<name>__<index>` in index order; otherwise in configuration order;
- outputs named `<name>__<index>` are taken from position `index` of the returned tuple
  (otherwise in configuration order; a returned dict is read by output name);
- with `max_batch_size > 0`, all the requests of one dynamic batch that have the same
  per-item shapes are concatenated along dimension 0, run in a single `forward` call, and
  the outputs split back per request.

`MATTESERVE_TRITON_TORCH_THREADS` sets torch's intra-op thread count (default: the CPUs
this process may run on).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

_INDEXED_NAME = re.compile(r"^.+__(\d+)$")


def _argument_order(entries: list[dict[str, Any]], forward_arguments: list[str]) -> list[dict[str, Any]]:
    """The input configurations in `forward` argument order.

    Inputs named like the arguments of `forward` go by name; otherwise, when all of them
    end in `__<index>`, by index; otherwise in configuration order.
    """
    by_name = {entry["name"]: entry for entry in entries}
    if set(by_name) == set(forward_arguments):
        return [by_name[name] for name in forward_arguments]
    matches = [_INDEXED_NAME.match(entry["name"]) for entry in entries]
    if all(matches):
        indices = [int(m[1]) for m in matches]
        return [entry for _, entry in sorted(zip(indices, entries, strict=True), key=lambda pair: pair[0])]
    return list(entries)


def _output_positions(entries: list[dict[str, Any]]) -> list[int]:
    """Position of every configured output in the tuple returned by `forward`."""
    matches = [_INDEXED_NAME.match(entry["name"]) for entry in entries]
    if all(matches):
        return [int(m[1]) for m in matches]
    return list(range(len(entries)))


class TritonPythonModel:
    """Serves one TorchScript module; one instance per Triton model instance (stub process)."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the TorchScript file of this model version and read the tensor layout."""
        config = json.loads(args["model_config"])
        threads = int(os.environ.get("MATTESERVE_TRITON_TORCH_THREADS") or 0)
        torch.set_num_threads(threads if threads > 0 else max(1, len(os.sched_getaffinity(0))))
        path = os.path.join(args["model_repository"], args["model_version"], "model.pt")
        self.module = torch.jit.load(path, map_location="cpu").eval()
        self.batched = int(config.get("max_batch_size", 0)) > 0
        forward_arguments = [argument.name for argument in self.module.forward.schema.arguments[1:]]
        self.inputs = [
            (entry["name"], pb_utils.triton_string_to_numpy(entry["data_type"]))
            for entry in _argument_order(config["input"], forward_arguments)
        ]
        outputs = config["output"]
        self.outputs = [
            (entry["name"], pb_utils.triton_string_to_numpy(entry["data_type"]), position)
            for entry, position in zip(outputs, _output_positions(outputs), strict=True)
        ]

    def _read_inputs(self, request: Any) -> list[np.ndarray]:
        """The input arrays of one request, in `forward` argument order."""
        arrays = []
        for name, dtype in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"input {name!r} is missing")
            arrays.append(np.asarray(tensor.as_numpy(), dtype=dtype))
        return arrays

    def _forward(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Run the module once and return the configured outputs as numpy arrays."""
        # The arrays may live in the backend's shared memory (read-only): torch gets copies.
        tensors = [torch.from_numpy(np.array(a, copy=True)) for a in arrays]
        with torch.inference_mode():
            result = self.module(*tensors)
        if isinstance(result, dict):
            values = [result[name] for name, _, _ in self.outputs]
        else:
            if isinstance(result, torch.Tensor):
                result = (result,)
            values = [result[position] for _, _, position in self.outputs]
        return [
            v.detach().cpu().numpy().astype(dtype, copy=False)
            for v, (_, dtype, _) in zip(values, self.outputs, strict=True)
        ]

    def _respond(self, outputs: list[np.ndarray]) -> Any:
        """An inference response carrying the given output arrays."""
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(array))
            for (name, _, _), array in zip(self.outputs, outputs, strict=True)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer a dynamic batch of requests, with one `forward` per group of equal shapes."""
        responses: list[Any] = [None] * len(requests)
        groups: dict[Any, list[tuple[int, list[np.ndarray]]]] = {}
        for index, request in enumerate(requests):
            try:
                arrays = self._read_inputs(request)
            except Exception as exc:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
                continue
            key = tuple(a.shape[1:] for a in arrays) if self.batched else index
            groups.setdefault(key, []).append((index, arrays))

        for members in groups.values():
            try:
                for index, outputs in self._run_group(members):
                    responses[index] = self._respond(outputs)
            except Exception as exc:
                error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
                for index, _ in members:
                    responses[index] = pb_utils.InferenceResponse(error=error)
        return responses

    def _run_group(self, members: list[tuple[int, list[np.ndarray]]]) -> list[tuple[int, list[np.ndarray]]]:
        """Run requests with equal per-item shapes as one batch; return each one's outputs."""
        if len(members) == 1:
            batch = members[0][1]
        else:
            batch = [np.concatenate(parts, axis=0) for parts in zip(*(m[1] for m in members), strict=True)]
        outputs = self._forward(batch)
        if not self.batched:
            return [(members[0][0], outputs)]
        sizes = [arrays[0].shape[0] for _, arrays in members]
        total = sum(sizes)
        for output, (name, _, _) in zip(outputs, self.outputs, strict=True):
            if output.ndim == 0 or output.shape[0] != total:
                raise ValueError(
                    f"output {name!r} has shape {list(output.shape)}, expected a batch dimension of {total}"
                )
        bounds = np.cumsum(sizes)[:-1]
        per_output = [np.split(output, bounds, axis=0) for output in outputs]
        return [(index, [parts[i] for parts in per_output]) for i, (index, _) in enumerate(members)]

    def finalize(self) -> None:
        """Release the module when Triton unloads the model."""
        self.module = None
