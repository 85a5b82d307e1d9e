"""`edgesr upscale`: super-resolve an image, a folder of images or a video, with a model or with an exported
artifact on any runtime."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from edgesr.cli.common import describe_model, force_option, load_model, scale_option, weights_option



@dataclass
class Engine:
    """The SR function and the tiling limits of a model or artifact."""

    fn: object
    scale: int
    tile: int
    halo: int
    min_size: int
    model: object = None  #: the torch module (None for an artifact)


def _engine(args: tuple[str, ...], scale: int | None, weights: str | None, artifact: Path | None,
            backend: str | None, tile: int, halo: int) -> Engine:
    from edgesr.errors import UserInputError

    if artifact is None:
        from edgesr.inference import torch_sr_function

        model = load_model(args[0] if len(args) == 3 else None, scale, weights)
        click.echo(describe_model(model))
        return Engine(torch_sr_function(model), model.scale, tile, halo, getattr(model, "min_input_size", 1), model)
    if weights:
        raise UserInputError("--weights applies to MODEL; an artifact carries its own.")
    from edgesr.export.tensorrt.profiles import plan_runner_tiling
    from edgesr.runtimes import create_runner

    runner = create_runner(artifact, backend).activate()
    plan, out_scale = plan_runner_tiling(runner, tile, halo, scale)
    if plan.note:
        click.echo(plan.note)
    click.echo(f"{runner.name} ({runner.io.describe()}, x{out_scale})")
    return Engine(plan.wrap(runner.as_sr_function(), out_scale), out_scale, plan.tile, plan.halo, plan.min_size)


@click.command("upscale")
@click.argument("args", nargs=-1, metavar="[MODEL] SRC DST")
@scale_option
@weights_option
@click.option("--artifact", "--engine", "artifact", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Upscale with an exported artifact instead of MODEL (.onnx, .xml, .engine/.plan, ...): its runtime is "
                   "picked from the extension, its I/O convention and limits from its sidecar.")
@click.option("--backend", "-b", default=None, help="Runtime for --artifact (default: from the extension).")
@click.option("--tile", type=int, default=256, show_default=True,
              help="Tile size in LR pixels; 0 runs the whole image at once. With a TensorRT engine it is lowered so "
                   "that every tile (with its halo) fits the engine's profile.")
@click.option("--halo", type=int, default=32, show_default=True, help="Context pixels around each tile.")
@click.option("--blend", type=int, default=0, show_default=True, metavar="PX",
              help="Feather tile seams over PX LR pixels (linear weights; needs halo >= PX/2). 0: hard crop.")
@click.option("--two-pass", is_flag=True,
              help="ESA models (RLFN, RFDN, EFDN) in PyTorch: run the model once on the whole image first and give "
                   "every tile the whole image's attention maps, so tiled output matches untiled.")
@click.option("--two-pass-downscale", type=int, default=1, show_default=True, metavar="N",
              help="--two-pass: take the attention maps from a copy downscaled N times (less memory for pass 1).")
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips/rotations (x8 compute).")
@click.option("--keep-16bit", is_flag=True, help="16-bit PNG inputs give 16-bit PNG outputs (default: 8-bit).")
@click.option("--exif-orientation/--no-exif-orientation", default=True, show_default=True,
              help="Rotate/flip photos as their EXIF Orientation tag says before upscaling.")
@click.option("--max-megapixels", type=float, default=None, metavar="MP",
              help="Refuse inputs larger than this (read from the header, before decoding). Default: what half "
                   "of the machine's free memory can upscale.")
@click.option("--recursive", "-r", is_flag=True, help="Folders: include subfolders (relative paths are kept).")
@click.option("--glob", "pattern", default=None, metavar="PATTERN",
              help="Folders: only files whose relative path matches PATTERN (e.g. '*.jpg', 'day1/*.png').")
@click.option("--ext", "out_ext", default=None, metavar="EXT",
              help="Folders: output format for every file (e.g. png); default: the input's own extension.")
@click.option("--shard", default=None, metavar="K/N",
              help="Folders: process only shard K of N (file i of the sorted list goes to shard i %% N + 1), e.g. "
                   "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.")
@click.option("--codec", default="libx264", show_default=True, help="Video: encoder (FFmpeg name).")
@click.option("--crf", type=float, default=18, show_default=True, help="Video: constant rate factor (lower: better).")
@click.option("--pix-fmt", default="yuv420p", show_default=True, help="Video: pixel format of the encoded frames.")
@click.option("--preset", default=None, help="Video: encoder preset (e.g. medium, slow).")
@click.option("--batch", type=int, default=4, show_default=True, help="Video: frames upscaled together.")
@click.option("--segment-frames", type=int, default=120, show_default=True,
              help="Video: frames per resumable segment.")
@click.option("--resume", is_flag=True, help="Video: continue an interrupted run (finished segments are kept).")
@force_option
def command(args: tuple[str, ...], scale: int | None, weights: str | None, artifact: Path | None, backend: str | None,
            tile: int, halo: int, blend: int, two_pass: bool, two_pass_downscale: int, self_ensemble: bool,
            keep_16bit: bool, exif_orientation: bool,
            max_megapixels: float | None, recursive: bool, pattern: str | None, out_ext: str | None,
            shard: str | None, codec: str, crf: float, pix_fmt: str, preset: str | None, batch: int,
            segment_frames: int, resume: bool, force: bool) -> None:
    """Upscale SRC into DST: an image file, a folder of images (DST a folder) or a video.

    `edgesr upscale MODEL SRC DST` runs a registered model in PyTorch (`edgesr upscale --weights FILE SRC DST`: the
    model detected from the checkpoint); `edgesr upscale --artifact FILE SRC DST` (or `--engine FILE`) runs an
    exported artifact. Images keep their kind (RGB, grayscale, grey+alpha, RGBA) and are written atomically; in
    a folder a bad file is reported and the run goes on (exit 1 at the end).
    """
    from edgesr.errors import UserInputError
    from edgesr.inference.files import UpscaleOptions

    detect = artifact is None and len(args) == 2 and weights is not None
    if artifact is None and len(args) != 3 and not detect:
        raise UserInputError("expected MODEL SRC DST (or --weights FILE SRC DST, or --artifact FILE SRC DST).")
    if artifact is not None and len(args) != 2:
        raise UserInputError("with --artifact/--engine give only SRC DST (the artifact replaces MODEL).")
    if artifact is None and (backend is not None):
        raise UserInputError("--backend applies to --artifact.")
    if two_pass and artifact is not None:
        raise UserInputError("--two-pass runs MODEL in PyTorch (it hooks the attention layers); an exported "
                             "artifact tiles the ordinary way: use --blend to soften its seams.")
    if two_pass and self_ensemble:
        raise UserInputError("--two-pass and --self-ensemble cannot be combined (the ensemble's flips move the "
                             "tiles the attention maps are cut for).")
    src, dst = Path(args[-2]), Path(args[-1])
    attention = two_pass_downscale if two_pass else None
    folder_only = {"--recursive": recursive, "--glob": pattern, "--ext": out_ext, "--shard": shard}
    options = UpscaleOptions(halo=halo, blend=blend, self_ensemble=self_ensemble, keep_16bit=keep_16bit,
                             exif_orientation=exif_orientation, max_megapixels=max_megapixels)
    if src.is_dir():
        _folder(args, scale, weights, artifact, backend, tile, options, src, dst, recursive, pattern, out_ext,
                shard, force, attention)
        return
    given = [name for name, value in folder_only.items() if value]
    if given:
        raise UserInputError(f"{', '.join(given)} apply to folders; {src} is not a folder.")
    from edgesr.video.probe import VIDEO_EXTENSIONS

    if src.suffix.lower() in VIDEO_EXTENSIONS or dst.suffix.lower() in VIDEO_EXTENSIONS:
        if two_pass:
            raise UserInputError("--two-pass applies to images and folders, not videos.")
        from edgesr.video.pipeline import VideoOptions

        video = VideoOptions(codec=codec, crf=crf, pix_fmt=pix_fmt, preset=preset, batch=batch,
                             segment_frames=segment_frames, halo=halo, blend=blend, resume=resume, force=force,
                             progress=True)
        _video(args, scale, weights, artifact, backend, tile, video, src, dst)
        return
    if resume:
        raise UserInputError("--resume applies to videos.")
    _image(args, scale, weights, artifact, backend, tile, options, src, dst, force, attention)


def _with_engine(options, engine: Engine, attention: int | None):
    """`options` with the engine's tiling limits, progress bars and, for --two-pass (`attention`: the
    downscale of pass 1), the whole-image attention hook."""
    from dataclasses import replace

    on_image = None
    if attention is not None:
        from edgesr.inference.two_pass import whole_image_attention

        on_image = whole_image_attention(engine.model, attention)
    return replace(options, tile=engine.tile, halo=engine.halo, min_size=engine.min_size, progress=True,
                   on_image=on_image)


def _image(args, scale, weights, artifact, backend, tile, options, src: Path, dst: Path, force: bool,
           attention: int | None) -> None:
    from edgesr.inference.files import check_output, upscale_file

    check_output(src, dst, force, options.keep_16bit)  # before loading anything
    engine = _engine(args, scale, weights, artifact, backend, tile, options.halo)
    options = _with_engine(options, engine, attention)
    rep = upscale_file(engine.fn, src, dst, engine.scale, force=force, options=options)
    kind = "grayscale" if rep.grayscale else "RGB"
    click.echo(f"{src} {rep.input_shape[1]}x{rep.input_shape[0]} -> {dst} {rep.output_shape[1]}x"
               f"{rep.output_shape[0]} ({kind}{' + alpha' if rep.alpha else ''}, {rep.bit_depth}-bit, "
               f"{rep.tiles} tile(s))")


def _video(args, scale, weights, artifact, backend, tile, video, src: Path, dst: Path) -> None:
    from dataclasses import replace

    from edgesr.video.pipeline import check_video_output, upscale_video
    from edgesr.video.probe import probe_video

    check_video_output(src, dst, video.force, video.resume)
    info = probe_video(src)  # a bad input is refused before the model loads
    click.echo(f"{src}: {info.describe()}")
    engine = _engine(args, scale, weights, artifact, backend, tile, video.halo)
    video = replace(video, tile=engine.tile, halo=engine.halo, min_size=engine.min_size)
    engine_id = f"artifact {artifact.resolve()} {artifact.stat().st_size}" if artifact else \
        f"model {args[0]} {getattr(engine.model, 'weights_path', None)} x{engine.scale}"
    rep = upscale_video(engine.fn, src, dst, engine.scale, video, engine_id=engine_id,
                        log=lambda m: click.echo(m, err=True))
    fps = rep.upscaled / rep.seconds if rep.seconds > 0 else 0.0
    click.echo(f"{src} -> {dst} {rep.width}x{rep.height}: {rep.frames} frames ({rep.upscaled} upscaled now, "
               f"{fps:.2f} frames/s), audio/subtitle streams copied: {rep.source.audio + rep.source.subtitles}")


def _folder(args, scale, weights, artifact, backend, tile, options, src: Path, dst: Path, recursive: bool,
            pattern: str | None, out_ext: str | None, shard: str | None, force: bool, attention: int | None) -> None:
    from edgesr.errors import EdgesrError, UserInputError
    from edgesr.inference.files import check_output, upscale_file
    from edgesr.inference.folder import Shard, plan_folder, run_folder

    suffix = None
    if out_ext:
        suffix = out_ext if out_ext.startswith(".") else f".{out_ext}"
    jobs = plan_folder(src, dst, recursive=recursive, pattern=pattern, suffix=suffix, shard=Shard.parse(shard))
    if not jobs:
        raise UserInputError(f"no images in {src}{' (with --recursive)' if recursive else ''}"
                             f"{f' matching {pattern!r}' if pattern else ''}{f' in shard {shard}' if shard else ''}.")
    for job in jobs:  # every output path is checked before any compute
        check_output(job.src, job.dst, True, options.keep_16bit)
    engine = _engine(args, scale, weights, artifact, backend, tile, options.halo)
    options = _with_engine(options, engine, attention)

    def one(job):
        rep = upscale_file(engine.fn, job.src, job.dst, engine.scale, force=force, options=options)
        return rep.input_shape

    import sys

    from tqdm.auto import tqdm

    summary = run_folder(jobs, one, force=force, progress=True, log=lambda m: tqdm.write(m, file=sys.stderr))
    click.echo(f"{src} -> {dst}: {summary.describe()}")
    if summary.failed:
        lines = "\n".join(f"  {job.src}: {msg}" for job, msg in summary.failed)
        click.echo(f"failed files:\n{lines}", err=True)
        raise EdgesrError(f"{len(summary.failed)} of {len(jobs)} file(s) failed (listed above); the others were "
                          "written.")
