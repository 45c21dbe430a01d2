"""The ``matteserve`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, ScribblePrompt, TextPrompt

if TYPE_CHECKING:
    from service.config import Settings

app = typer.Typer(help="matteserve: interactive and instance image matting service.", no_args_is_help=True)
console = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    """The service settings; a wrong ``MATTESERVE_*`` value ends the command with exit code 2
    and one line per wrong variable, not a traceback."""
    from service.config import InvalidSettings, load_settings

    try:
        return load_settings(**overrides)
    except InvalidSettings as exc:
        for line in str(exc).splitlines():
            console.print(f"[red]Invalid configuration:[/] {line}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (MATTESERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (MATTESERVE_PORT).")] = None,
) -> None:
    """Run the API on its embedded defaults: local backend, and a Redis it starts itself
    when MATTESERVE_REDIS_URL is unset and nothing answers on 127.0.0.1:6379."""
    import uvicorn

    from service.app import create_app
    from service.pipelines.routing import load_routes
    from service.redis_runtime import redacted_url, resolve_redis

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings(**overrides)
    try:  # read again at start-up; checked here so that a typo ends the command, not the app
        load_routes(settings.auto_routes, settings.model_repository / "auto_routes.json")
    except ValueError as exc:
        console.print(f"[red]Invalid configuration:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    url, started = resolve_redis(settings.redis_url)
    if started is not None:
        console.print(f"[yellow]No Redis configured or reachable: started redis-server on {url}[/]")
    settings = settings.model_copy(update={"redis_url": url})
    anonymous = "allowed" if settings.anonymous_allowed else "off"
    console.print(
        f"matteserve on http://{settings.host}:{settings.port}  backend={settings.backend}  "
        f"redis={redacted_url(url)}  anonymous={anonymous}"
    )
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
        )
    finally:
        if started is not None:
            started.stop()


def _floats(text: str, count: int, what: str) -> list[float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts[:count]]
    except ValueError:
        raise typer.BadParameter(f"{what} needs {count} numbers separated by commas, got {text!r}") from None
    if len(values) != count:
        raise typer.BadParameter(f"{what} needs {count} numbers separated by commas, got {text!r}")
    return values


def parse_cli_prompts(
    boxes: list[str], clicks: list[str], scribbles: list[str], texts: list[str], scribble_radius: float
) -> list[Prompt]:
    """Turn ``--box x0,y0,x1,y1``, ``--click x,y[,bg]``, ``--scribble "x,y;x,y;...[;bg]"`` and
    ``--text`` options into wire prompts."""
    prompts: list[Prompt] = []
    for box in boxes:
        x0, y0, x1, y1 = _floats(box, 4, "--box")
        prompts.append(BoxPrompt(x0=x0, y0=y0, x1=x1, y1=y1))
    for click in clicks:
        parts = click.split(",")
        label = parts[2].strip() if len(parts) > 2 else "fg"
        if label not in ("fg", "bg"):
            raise typer.BadParameter(f"--click label must be fg or bg, got {label!r}")
        x, y = _floats(",".join(parts[:2]), 2, "--click")
        prompts.append(ClickPrompt(x=x, y=y, label=label))
    for scribble in scribbles:
        tokens = [t.strip() for t in scribble.split(";") if t.strip()]
        label = "fg"
        if tokens and tokens[-1] in ("fg", "bg"):
            label = tokens.pop()
        points = [tuple(_floats(t, 2, "--scribble point")) for t in tokens]
        prompts.append(ScribblePrompt(points=points, label=label, radius=scribble_radius))
    prompts.extend(TextPrompt(text=t) for t in texts)
    return prompts


@app.command()
def cutout(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="PNG, JPEG or WebP photo.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the PNG.")],
    box: Annotated[list[str], typer.Option(help="x0,y0,x1,y1 (repeatable).")] = [],  # noqa: B006
    click: Annotated[list[str], typer.Option(help="x,y or x,y,bg (repeatable).")] = [],  # noqa: B006
    scribble: Annotated[list[str], typer.Option(help='"x,y;x,y;...[;bg]" (repeatable).')] = [],  # noqa: B006
    text: Annotated[list[str], typer.Option(help="Text description of the target.")] = [],  # noqa: B006
    scribble_radius: Annotated[float, typer.Option(help="Brush radius of scribbles, pixels.")] = 4.0,
    model: Annotated[str, typer.Option(help="auto, dfimat, semat, smat or classical.")] = "auto",
    alpha: Annotated[
        bool, typer.Option("--alpha", help="Write the alpha matte instead of the RGBA cut-out.")
    ] = False,
    server: Annotated[str | None, typer.Option(help="Use a running matteserve at this URL instead.")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="MATTESERVE_API_KEY", help="API key for --server.")
    ] = None,
) -> None:
    """Cut out the marked object of IMAGE in one shot, in-process (no server needed) or via --server."""
    prompts = parse_cli_prompts(box, click, scribble, text, scribble_radius)
    if output.is_dir() or not output.parent.is_dir():  # say so before the matte is computed
        raise typer.BadParameter(f"{output}: no such folder to write the PNG into", param_hint="--output")
    kind = "alpha" if alpha else "cutout"
    if server:
        from service.client import MatteClient, MatteServerError

        try:
            with MatteClient(server, api_key=api_key) as client:
                png = client.matte(image.read_bytes(), prompts, output=kind, model=model)
        except MatteServerError as exc:
            console.print(f"[red]{exc.code}[/]: {exc.message}")
            raise typer.Exit(2) from None
    else:
        png = asyncio.run(_cutout_in_process(image.read_bytes(), prompts, model, kind))
    _write_output(output, png)
    console.print(f"wrote {output} ({len(png)} bytes)")


async def _cutout_in_process(data: bytes, prompts: list[Prompt], model: str, kind: str) -> bytes:
    import anyio

    from service.cutout import cutout_rgba
    from service.errors import ApiError
    from service.imaging import alpha_to_u8, decode_image, encode_png
    from service.pipelines.factory import build_registry, close_registry
    from service.prompts import validate_prompts
    from service.serving import matte_image

    settings = _settings()
    has_text = any(isinstance(p, TextPrompt) for p in prompts)
    registry = await build_registry(settings, anyio.CapacityLimiter(os.cpu_count() or 1), text_now=has_text)
    try:
        image = decode_image(data, max_pixels=settings.max_pixels)
        validate_prompts(prompts, image.shape[1], image.shape[0], max_prompts=settings.max_prompts_per_round)
        matte, name, _ = await matte_image(registry, image, prompts, model)
    except ApiError as exc:
        console.print(f"[red]{exc.code}[/]: {exc.message}")
        raise typer.Exit(2) from None
    finally:
        await close_registry(registry)
    console.print(f"model: {name}")
    if kind == "alpha":
        return encode_png(alpha_to_u8(matte))
    return encode_png(cutout_rgba(image, matte, max_pixels=settings.cutout_max_pixels))


@app.command()
def export(
    repo: Annotated[Path, typer.Option(help="Triton model repository to write.")] = Path("triton_repo"),
    size: Annotated[int, typer.Option(help="Fixed (letterboxed) input size, a multiple of 32.")] = 512,
    preset: Annotated[str, typer.Option(help="Size preset: tiny (shipped) or paper.")] = "tiny",
    instance_count: Annotated[int, typer.Option(help="instance_group count per model.")] = 1,
    instance_kind: Annotated[str, typer.Option(help="KIND_GPU or KIND_CPU.")] = "KIND_GPU",
    weights_dir: Annotated[
        Path | None,
        typer.Option(help="Trained <family>.pt state dicts to load [default: the shipped models/weights/]."),
    ] = None,
    untrained: Annotated[bool, typer.Option(help="Export initial (untrained) weights.")] = False,
    model: Annotated[list[str], typer.Option(help="Export only these models (repeatable).")] = [],  # noqa: B006
    weights: Annotated[
        list[Path],
        typer.Option(
            help="An imported official checkpoint (<family>-<variant>.pt from import-checkpoint) to export "
            "at native resolution instead of the shipped networks (repeatable)."
        ),
    ] = [],  # noqa: B006
) -> None:
    """Export the networks to TorchScript and write model.pt + config.pbtxt per model into the repository."""
    from models.checkpoint_import import CheckpointError
    from models.export import export_all, export_official
    from models.registry import SHIPPED_WEIGHTS

    if untrained:
        weights_dir = None
    elif weights_dir is None:
        weights_dir = SHIPPED_WEIGHTS

    if weights:
        written = {}
        for path in weights:
            try:
                written |= export_official(repo, path, instance_count, instance_kind)
            except (CheckpointError, FileNotFoundError, KeyError) as exc:
                console.print(f"[red]{path}: cannot export ({exc})[/red]")
                raise typer.Exit(2) from None
    else:
        written = export_all(
            repo,
            size,
            preset,
            instance_count,
            weights_dir,
            instance_kind=instance_kind,
            models=tuple(model) or None,
        )
    for name, path in written.items():
        console.print(f"{name:14s} {path}  ({(path / '1' / 'model.pt').stat().st_size / 1e6:.1f} MB)")


@app.command("import-checkpoint")
def import_checkpoint(
    family: Annotated[str, typer.Argument(help="mgmatting, instmatt, smat or semat.")],
    path: Annotated[Path, typer.Argument(help="The authors' checkpoint file, as they ship it.")],
    variant: Annotated[
        str | None,
        typer.Option(
            help="Name of the output (<family>-<variant>.pt) and, for semat, the architecture: sam, "
            "hq-sam or sam2 (default: the family's released variant)."
        ),
    ] = None,
    preset: Annotated[
        str, typer.Option(help="Network configuration: paper (the released files) or parity (test fixtures).")
    ] = "paper",
    out_dir: Annotated[
        Path | None, typer.Option(help="Where to write the weights [default: the shipped models/weights/].")
    ] = None,
) -> None:
    """Import a paper's released checkpoint: map every tensor onto the official-layout network,
    refuse on any missing / unexpected / mis-shaped key, write the weights + provenance JSON."""
    from models.checkpoint_import import CheckpointError
    from models.checkpoint_import import import_checkpoint as run_import

    try:
        result = run_import(family, path, variant, preset, out_dir)
    except CheckpointError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False, markup=True)
        raise typer.Exit(2) from None
    console.print(f"weights    {result.weights}")
    console.print(f"provenance {result.provenance}")
    console.print(f"next: matteserve export --weights {result.weights}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    family: Annotated[str, typer.Argument(help="iscn, mrn, semat, smat or instmatt (iscn first).")],
) -> None:
    """Train one network on the project's synthetic data and write models/weights/<family>.{pt,json}.

    Options are those of ``python -m models.train --help`` (``--preset``, ``--steps``,
    ``--time-budget-min``, ``--resume``, ``--size``, ``--batch-size``, ``--device``, ...).
    """
    from models.train.cli import cli as train_cli

    train_cli([family, *ctx.args])


@app.command("triton-local")
def triton_local(
    http_port: Annotated[int, typer.Option(help="HTTP port (0 = any free port).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port, what MATTESERVE_TRITON_URL points at.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port.")] = 8002,
    repository: Annotated[Path, typer.Option(help="The libtorch model repository to serve.")] = Path(
        "triton_repo"
    ),
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    instance_count: Annotated[int | None, typer.Option(help="Override each model's instance count.")] = None,
    torch_threads: Annotated[int | None, typer.Option(help="torch threads per model instance.")] = None,
) -> None:
    """Run a real Triton server on this machine (CPU) serving triton_repo/: the tritonserver bundled
    with nvidia-pytriton, its Python backend running the same model.pt files with the repository's
    own names, inputs, outputs and dynamic batching."""
    from service.triton_local import main as serve_triton

    raise typer.Exit(
        serve_triton(
            http_port,
            grpc_port,
            metrics_port,
            repository,
            host=host,
            instance_count=instance_count,
            torch_threads=torch_threads,
        )
    )


def _data_error(message: str) -> typer.BadParameter:
    """A usage error on ``--data`` (exit code 2, one line)."""
    return typer.BadParameter(message, param_hint="'--data'")


def _require_writable(path: Path, option: str, *, folder: bool = False) -> None:
    """End the command with a usage error now, not after the run, when ``path`` (a file, or with
    ``folder`` a folder to write into) cannot be written."""
    from service.evaluation.report import unwritable

    reason = unwritable(path, folder=folder)
    if reason is not None:
        raise typer.BadParameter(reason, param_hint=f"'{option}'")


def _write_output(path: Path, data: str | bytes) -> None:
    """Write an output file (its folders made as needed); an error the early check could not
    foresee (a full disk, a folder without write permission) ends the command with one line,
    not a traceback."""
    from rich.markup import escape

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    except OSError as exc:
        console.print(f"[red]cannot write {escape(str(path))}[/]: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(1) from None


def _eval_samples(data: str, max_instances: int, limit: int | None) -> tuple[list, list]:
    """The targets of ``--data`` and the photos skipped for want of one; a spec that names no
    usable data, or no target at all, is a usage error."""
    from service.evaluation.samples import DataError, Skipped, samples

    skipped: list[Skipped] = []
    try:
        items = list(samples(data, max_instances=max_instances, limit=limit, skipped=skipped))
    except DataError as exc:
        raise _data_error(str(exc)) from None
    if not items:
        without = f" ({len(skipped)} photos skipped: {_names(skipped)})" if skipped else ""
        raise _data_error(f"no samples in {data!r}{without}")
    return items, skipped


def _names(things: list, most: int = 5) -> str:
    """The first ``most`` of ``things`` as text, and how many more."""
    shown = ", ".join(str(t) for t in things[:most])
    return shown + (f" and {len(things) - most} more" if len(things) > most else "")


def _print_skipped(data: str, skipped: list) -> None:
    """Say which photos of ``data`` gave no target, so that a short count is not a surprise."""
    from rich.markup import escape

    if skipped:
        console.print(
            f"[yellow]skipped {len(skipped)} photos of {escape(data)} without a target[/]: "
            f"{escape(_names(skipped))}",
            highlight=False,
        )


@app.command("eval")
def evaluate(
    data: Annotated[
        str,
        typer.Option(
            help="A HIM2K-layout or image/alpha folder, synthetic:N[@SIZE], or a CCP development set "
            "(ccp-photos|ccp-scenes|ccp-closeups:N[@SIZE][?root=PATH])."
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Comma-separated models to compare in the same run (or auto).")
    ] = "classical",
    protocol: Annotated[
        str, typer.Option(help="box, click, scribble, text, mix or auto (no prompt).")
    ] = "box",
    rounds: Annotated[int, typer.Option(min=1, help="Rounds per simulated user.")] = 5,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many targets.")] = None,
    max_instances: Annotated[int, typer.Option(min=1, help="Targets per photo (largest first).")] = 3,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for eval.json and the plot.")] = Path("out/eval"),
) -> None:
    """Evaluate pipelines through the service's own code under the DFIMat user simulator:
    SAD, MSE, MAD, Grad, Conn, IoU per round, NoC@85/90; a table, JSON and a plot."""
    from service.evaluation.runner import model_names

    try:
        models = model_names(model)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--model'") from None
    if protocol not in ("box", "click", "scribble", "text", "mix", "auto"):
        raise typer.BadParameter(f"unknown protocol {protocol!r}", param_hint="'--protocol'")
    _require_writable(out, "--out", folder=True)
    for suffix in ("json", "png"):
        _require_writable(out / f"eval_{protocol}.{suffix}", "--out")
    asyncio.run(_evaluate(data, models, protocol, rounds, limit, max_instances, seed, out))


async def _evaluate(
    data: str,
    models: list[str],
    protocol: str,
    rounds: int,
    limit: int | None,
    max_instances: int,
    seed: int,
    out: Path,
) -> None:
    from dataclasses import asdict

    import anyio
    from rich.markup import escape
    from rich.progress import Progress

    from service.evaluation import report
    from service.evaluation.runner import run_sample, summarise
    from service.pipelines.factory import build_registry, close_registry

    if protocol == "auto":
        rounds = 1
    items, skipped = _eval_samples(data, max_instances, limit)
    registry = await build_registry(_settings(), anyio.CapacityLimiter(os.cpu_count() or 1), text_now=True)
    results = {name: [] for name in models}
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("evaluating", total=len(items) * len(models))
            for item in items:
                for name in models:
                    results[name].append(await run_sample(registry, name, item, protocol, rounds, seed))
                    progress.advance(task)
    finally:
        await close_registry(registry)
    summaries = [summarise(name, results[name]) for name in models]
    title = f"{data} — protocol {protocol}, {rounds} round(s), {len(items)} targets"
    out_console = Console(width=max(console.width, 150))
    out_console.print(report.table(summaries, title))
    for summary in summaries:
        out_console.print(report.per_round_table(summary))
        for example in summary.failure_examples:
            out_console.print(f"[yellow]{summary.model} failed[/]: {escape(example)}")
    _print_skipped(data, skipped)
    config = {
        "data": data,
        "models": models,
        "protocol": protocol,
        "rounds": rounds,
        "targets": len(items),
        "skipped": [asdict(s) for s in skipped],
        "seed": seed,
        "max_instances": max_instances,
    }
    stem = f"{protocol}"
    try:
        report.write_json(out / f"eval_{stem}.json", config, summaries)
        report.plot(out / f"eval_{stem}.png", summaries, title)
    except OSError as exc:
        console.print(f"[red]cannot write into {escape(str(out))}[/]: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"wrote {out / f'eval_{stem}.json'} and {out / f'eval_{stem}.png'}")


@app.command("eval-stages")
def eval_stages(
    data: Annotated[str, typer.Option(help="A folder (optionally ?column=value) or synthetic:N[@SIZE].")],
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many targets.")] = None,
    max_instances: Annotated[int, typer.Option(min=1, help="Targets per photo (largest first).")] = 1,
    markdown_out: Annotated[Path | None, typer.Option(help="Also write the table as Markdown.")] = None,
) -> None:
    """What limits dfimat's mattes, stage by stage: ISCN's mask, MRN fed ground-truth masks vs
    closed-form matting on the same trimap, guided vs bilinear upsampling (oracle experiments)."""
    from rich.markup import escape

    if markdown_out is not None:
        _require_writable(markdown_out, "--markdown-out")
    table = asyncio.run(_eval_stages(data, limit, max_instances))
    text = table.markdown()
    Console(width=160).print(text)
    for failure in table.failures:
        console.print(f"[yellow]failed[/]: {escape(failure)}")
    if markdown_out is not None:
        _write_output(markdown_out, text)


async def _eval_stages(data: str, limit: int | None, max_instances: int):
    import anyio

    from service.evaluation.stages import stage_table
    from service.pipelines.factory import build_registry, close_registry

    items, skipped = _eval_samples(data, max_instances, limit)
    _print_skipped(data, skipped)
    registry = await build_registry(_settings(), anyio.CapacityLimiter(os.cpu_count() or 1))
    try:
        return await stage_table(registry.pipelines["dfimat"], items)
    finally:
        await close_registry(registry)


@app.command("eval-instances")
def eval_instances(
    data: Annotated[
        str,
        typer.Option(
            help="A multi-instance folder (HIM2K or image/ + alpha/<id>/<k>.png) or a single-instance "
            "one (one person per photo), optionally ?column=value on its sources.csv."
        ),
    ],
    min_area: Annotated[
        int,
        typer.Option(
            min=0, help="Ignore ground-truth people under this many pixels (never under 16, as eval)."
        ),
    ] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
) -> None:
    """Evaluate /v1/instances (every person, no prompt): recognition quality and IMQ (InstMatt)."""
    import json

    if out is not None:
        _require_writable(out, "--out")
    summary = asyncio.run(_eval_instances(data, min_area))
    Console().print_json(json.dumps(summary))
    _print_skipped(data, summary["skipped_photos"])
    if out is not None:
        _write_output(out, json.dumps(summary, indent=2) + "\n")


async def _eval_instances(data: str, min_area: int) -> dict:
    import anyio

    from service.evaluation.instances import evaluate_instances, instance_folder
    from service.evaluation.samples import DataError
    from service.pipelines.factory import build_registry, close_registry

    try:
        folder = instance_folder(data)
    except DataError as exc:
        raise _data_error(str(exc)) from None
    registry = await build_registry(_settings(), anyio.CapacityLimiter(os.cpu_count() or 1))
    try:
        if registry.instances is None:
            raise typer.BadParameter("instance matting is not available on this backend")
        report = await evaluate_instances(registry.instances, folder, min_area)
    finally:
        await close_registry(registry)
    return {
        "data": data,
        **report.summary(),
        "failure_examples": report.failures[:3],
        "skipped_photos": report.skipped,
    }


@app.command("calibrate-auto")
def calibrate_auto(
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="Evaluation data for prompted situations (repeatable): a folder (optionally "
            "?column=value), or synthetic:N[@SIZE]."
        ),
    ] = None,
    automatic_data: Annotated[
        list[str] | None,
        typer.Option(help="Data for the no-prompt situation (repeatable; default: --data)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many targets per data set.")] = 40,
    max_instances: Annotated[int, typer.Option(min=1, help="Targets per photo (largest first).")] = 2,
    out: Annotated[Path, typer.Option(help="Routing table to write.")] = Path("triton_repo/auto_routes.json"),
    markdown_out: Annotated[
        Path | None, typer.Option(help="Also write the figures as a Markdown table.")
    ] = None,
) -> None:
    """Measure every pipeline per prompt situation and write auto's routing table from the figures
    (a learned pipeline is chosen only where it beats the classical engine on every data set).
    Nothing is written when no situation could be routed; a situation without a route is named."""
    import json

    from rich.markup import escape

    from service.evaluation.routing import markdown

    _require_writable(out, "--out")
    if markdown_out is not None:
        _require_writable(markdown_out, "--markdown-out")
    document = asyncio.run(
        _calibrate(data or ["synthetic:30@512"], automatic_data or [], limit, max_instances)
    )
    if not document["routes"]:
        reasons = "; ".join(sorted(set(document["unrouted"].values())))
        errors = [
            error
            for entry in document["situations"].values()
            for c in entry["candidates"]
            for figures in c["per_data"].values()
            for error in figures["summary"]["failure_examples"]
        ]
        console.print(
            f"[red]no situation could be routed[/] ({escape(reasons)}"
            + (f"; e.g. {escape(errors[0])}" if errors else "")
            + f"): nothing written, {escape(str(out))} is left as it was",
            highlight=False,
        )
        raise typer.Exit(1)
    table = markdown(document)
    _write_output(out, json.dumps(document, indent=2) + "\n")
    Console(width=200).print(table)
    if markdown_out is not None:
        _write_output(markdown_out, table)
    for situation, reason in document["unrouted"].items():
        console.print(
            f"[yellow]no route for {situation}[/]: {reason}; the service keeps its default there",
            highlight=False,
        )
    console.print(f"routes {document['routes']} -> {out}", highlight=False)


async def _calibrate(data: list[str], automatic: list[str], limit: int | None, max_instances: int) -> dict:
    import anyio

    from service.evaluation.routing import DataSet, calibrate
    from service.pipelines.factory import build_registry, close_registry

    skipped: dict[str, list[str]] = {}

    def load(specs: list[str]) -> list[DataSet]:
        sets = []
        for spec in specs:
            items, skipped_here = _eval_samples(spec, max_instances, limit)
            if all(item.error is not None for item in items):
                raise _data_error(
                    f"none of the {len(items)} targets of {spec!r} could be read ({items[0].error})"
                )
            _print_skipped(spec, skipped_here)
            skipped[spec] = [str(s) for s in skipped_here]
            sets.append(DataSet.of(spec, items))
            console.print(f"{spec}: {len(items)} targets, scored by {sets[-1].metric}", highlight=False)
        return sets

    prompted, automatic_sets = load(data), load(automatic)
    registry = await build_registry(_settings(), anyio.CapacityLimiter(os.cpu_count() or 1), text_now=True)
    try:
        document = await calibrate(registry, prompted, automatic_sets or None)
    finally:
        await close_registry(registry)
    document["data"] = data
    document["automatic_data"] = automatic or data
    document["targets"] = {d.name: len(d.items) for d in prompted + automatic_sets}
    document["skipped"] = skipped
    return document


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    app()
