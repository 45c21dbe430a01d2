"""Export: Triton configs parse, TorchScript matches eager, batching is exact, the committed repo is
generated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tritonclient.grpc import model_config_pb2 as mc

from models.export import (
    PARAM_PREFIX,
    build_for_export,
    config_text,
    export_all,
    parse_config,
    read_repo,
    read_settings,
    triton_config,
)
from models.io_spec import EXPORTED_MODELS, example_inputs, model_io
from models.registry import build_model, export_module, family_of

SMALL = 64
REPO = Path(__file__).resolve().parents[2] / "triton_repo"
WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "weights"
BUDGET_BYTES = 30_000_000
SHIPPED_BUDGET_BYTES = 40_000_000  # triton_repo/ + models/weights/


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    repo = tmp_path_factory.mktemp("triton_repo")
    export_all(repo, size=SMALL, instance_count=2)
    torch.set_num_threads(threads)
    return repo


def _eager(
    name: str, preset: str = "tiny", seed: int = 0, weights_dir: Path | None = None
) -> torch.nn.Module:
    model, _, _ = build_for_export(family_of(name), preset, seed, weights_dir)
    return export_module(name, model).eval()


@pytest.mark.parametrize("name", EXPORTED_MODELS)
def test_config_parses_as_triton_model_config(exported: Path, name: str) -> None:
    cfg = parse_config((exported / name / "config.pbtxt").read_text())
    io = model_io(name, SMALL)
    assert cfg.name == name
    assert cfg.platform == "pytorch_libtorch"
    assert cfg.max_batch_size == io.batching.max_batch_size > 0
    assert [(i.name, list(i.dims)) for i in cfg.input] == [(t.name, list(t.dims)) for t in io.inputs]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [(t.name, list(t.dims)) for t in io.outputs]
    assert list(cfg.dynamic_batching.preferred_batch_size) == list(io.batching.preferred_batch_sizes)
    assert cfg.dynamic_batching.max_queue_delay_microseconds > 0
    queue = cfg.dynamic_batching.default_queue_policy
    assert queue.max_queue_size == io.batching.max_queue_size > 0
    assert queue.default_timeout_microseconds == io.batching.queue_timeout_us > 0
    assert queue.timeout_action == mc.ModelQueuePolicy.TimeoutAction.REJECT
    sizes = [w.batch_size for w in cfg.model_warmup]
    assert sizes == sorted({1, *io.batching.preferred_batch_sizes, io.batching.max_batch_size})
    assert cfg.instance_group[0].count == 2
    assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_GPU
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params[PARAM_PREFIX + "weights"] == "untrained"
    assert params[PARAM_PREFIX + "preset"] == "tiny"
    assert params[PARAM_PREFIX + "input_size"] == str(SMALL)
    assert set(cfg.model_warmup[0].inputs) == {t.name for t in io.inputs}
    assert read_repo(exported)[name]["weights"] == "untrained"


@pytest.mark.parametrize("name", EXPORTED_MODELS)
def test_torchscript_matches_eager_and_batches_exactly(exported: Path, name: str) -> None:
    traced = torch.jit.load(str(exported / name / "1" / "model.pt"))
    eager = _eager(name)
    inputs = example_inputs(name, SMALL, batch=4, seed=11)
    with torch.no_grad():
        out_t = traced(*inputs)
        out_e = eager(*inputs)
        assert len(out_t) == len(model_io(name, SMALL).outputs)
        for a, b, spec in zip(out_t, out_e, model_io(name, SMALL).outputs, strict=True):
            assert a.shape == (4, *spec.dims)
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        # Dynamic batching must not change results: item i alone == item i in a batch of 4.
        for i in range(4):
            single = traced(*(x[i : i + 1] for x in inputs))
            for a, b in zip(single, out_t, strict=True):
                torch.testing.assert_close(a[0], b[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", EXPORTED_MODELS)
def test_graphs_are_device_agnostic(exported: Path, name: str) -> None:
    """Triton loads the files onto a GPU (``KIND_GPU``): no op may carry the trace-time device.

    ``torch.jit.load(..., map_location)`` moves parameters and buffers, but a device constant
    baked into an op (``arange(device=cpu)``, ``x.to(other)``) would still build CPU tensors.
    """
    graph = torch.jit.load(str(exported / name / "1" / "model.pt")).inlined_graph
    for node in graph.nodes():
        if node.kind() != "prim::Constant":
            continue
        kind = node.output().type().kind()
        assert kind != "DeviceObjType", node
        if kind == "TensorType":
            assert node.t("value").dim() == 0, node


def test_promptless_decoder_call_is_expressible(exported: Path) -> None:
    traced = torch.jit.load(str(exported / "iscn_decoder" / "1" / "model.pt"))
    io = model_io("iscn_decoder", SMALL)
    inputs = [torch.zeros((1, *t.dims), dtype=t.torch_dtype) for t in io.inputs]
    inputs[0], inputs[1] = example_inputs("iscn_decoder", SMALL, batch=1)[:2]
    with torch.no_grad():
        outs = traced(*inputs)
    assert all(torch.isfinite(o).all() for o in outs)
    assert outs[3].shape == (1, io.output("instance_scores").dims[0])


def test_export_is_deterministic(exported: Path, tmp_path: Path) -> None:
    export_all(tmp_path, size=SMALL, instance_count=2, models=("mrn", "smat_decoder"))
    for name in ("mrn", "smat_decoder"):
        assert (tmp_path / name / "config.pbtxt").read_text() == (
            exported / name / "config.pbtxt"
        ).read_text()
        a = torch.jit.load(str(tmp_path / name / "1" / "model.pt")).state_dict()
        b = torch.jit.load(str(exported / name / "1" / "model.pt")).state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_weights_dir_marks_models_trained(tmp_path: Path) -> None:
    torch.manual_seed(123)
    state = build_model("mrn", "tiny").state_dict()
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(state, weights / "mrn.pt")
    (weights / "mrn.json").write_text(json.dumps({"dataset": "synthetic", "steps": 1}))
    export_all(tmp_path / "repo", size=SMALL, weights_dir=weights, models=("mrn",))
    cfg = parse_config((tmp_path / "repo" / "mrn" / "config.pbtxt").read_text())
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params[PARAM_PREFIX + "weights"] == "trained"
    assert params[PARAM_PREFIX + "provenance"] == "mrn.json"
    assert (tmp_path / "repo" / "mrn" / "mrn.json").is_file()
    loaded = torch.jit.load(str(tmp_path / "repo" / "mrn" / "1" / "model.pt")).state_dict()
    for k, v in state.items():
        torch.testing.assert_close(loaded["model." + k], v)


def test_committed_repo_is_what_export_generates() -> None:
    """``triton_repo/`` is generated: regenerate each model at its recorded settings (from
    ``models/weights/`` when its config says trained) and compare."""
    names = sorted(p.name for p in REPO.iterdir() if (p / "config.pbtxt").is_file())
    assert names == sorted(EXPORTED_MODELS)
    total = sum(f.stat().st_size for f in REPO.rglob("*") if f.is_file())
    assert total <= BUDGET_BYTES, f"triton_repo is {total / 1e6:.1f} MB"
    shipped = total + sum(f.stat().st_size for f in WEIGHTS.rglob("*") if f.is_file())
    assert shipped <= SHIPPED_BUDGET_BYTES, f"triton_repo + models/weights are {shipped / 1e6:.1f} MB"
    for name in names:
        text = (REPO / name / "config.pbtxt").read_text()
        cfg = parse_config(text)
        settings = read_settings(cfg)
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        weights = params[PARAM_PREFIX + "weights"]
        provenance = params.get(PARAM_PREFIX + "provenance", "")
        io = model_io(name, settings.size, settings.preset)
        assert text == config_text(triton_config(io, settings, weights, provenance)), name
        traced = torch.jit.load(str(REPO / name / "1" / "model.pt"))
        weights_dir = None
        if weights == "trained":
            # Trained models are regenerated from the shipped state dicts in models/weights/.
            weights_dir = WEIGHTS
            family = family_of(name)
            assert (WEIGHTS / f"{family}.pt").is_file(), name
            assert provenance == f"{family}.json", name
            assert (REPO / name / provenance).read_text() == (WEIGHTS / provenance).read_text(), name
        eager = _eager(name, settings.preset, settings.seed, weights_dir)
        # Traced modules also keep non-persistent buffers (e.g. the ImageNet mean/std).
        ours = {**dict(eager.named_parameters()), **dict(eager.named_buffers())}
        theirs = traced.state_dict()
        assert ours.keys() == theirs.keys(), name
        for k in ours:
            assert torch.equal(ours[k], theirs[k]), (name, k)
        # Convolution weights are stored channels-last (``models.export.channels_last``).
        kernels = [t for t in theirs.values() if t.dim() == 4]
        assert all(t.is_contiguous(memory_format=torch.channels_last) for t in kernels), name
        inputs = example_inputs(name, settings.size, batch=1, preset=settings.preset, seed=5)
        with torch.no_grad():
            for a, b in zip(traced(*inputs), eager(*inputs), strict=True):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
