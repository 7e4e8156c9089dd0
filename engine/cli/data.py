"""Image data: `gluelab generate` (the synthetic plant) and `gluelab import` (a plant's own image sets)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.cli.arguments import add_store, non_negative_float, png_path, positive_int
from store import DEFAULT_STORE


def add_generate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", nargs="+", default=["part1", "part6", "part16"], help="part1 ... part20")
    parser.add_argument(
        "--images",
        type=int,
        default=300,
        help="images per part (default 300: 60%% train, 20%% good test, 20%% defective)",
    )
    parser.add_argument(
        "--train",
        type=positive_int,
        metavar="N",
        help="training images among them (default 60%%); the rest split evenly into good and defective test images",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder (default ./data)")
    parser.add_argument(
        "--workers", type=positive_int, default=os.cpu_count() or 1, help="processes (default: all cores)"
    )
    parser.add_argument("--store", type=Path, help="also register the parts in this results store")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="regenerate part folders a store has registered, and register them again",
    )
    parser.add_argument(
        "--sheet",
        type=png_path,
        metavar="FILE.png",
        help="instead of writing the parts, draw one row per part: a normal, an over- and an under-exposed"
        " acceptable frame, and one defect of each type with its mask outlined",
    )
    stream = parser.add_argument_group(
        "a line's camera (--stream): frames of one part written one at a time into --out, as a camera fills a folder"
    )
    stream.add_argument("--stream", action="store_true", help="write a stream of frames instead of parts")
    stream.add_argument("--part", help="the part on the line (part1 ... part20)")
    stream.add_argument("--frames", type=positive_int, default=400, help="frames to write (default 400)")
    stream.add_argument(
        "--drift", choices=["none", "brightness", "focus"], default="none", help="what changes on the line"
    )
    stream.add_argument("--drift-from", type=int, default=0, metavar="K", help="the first drifted frame (default 0)")
    stream.add_argument(
        "--rate", type=non_negative_float, default=0.0, metavar="F", help="frames per second (default 0: at once)"
    )
    stream.add_argument(
        "--defect-rate", type=non_negative_float, default=0.005, help="share of defective frames (default 0.005)"
    )
    parser.set_defaults(run=generate)


def generate_stream(args: argparse.Namespace) -> int:
    from engine.ingest.synthetic.stream import MANIFEST, stream_frames

    if args.part is None:
        raise ValueError("--stream needs --part: the part on the line")
    if args.drift != "none" and not 0 < args.drift_from <= args.frames:
        raise ValueError(f"--drift-from must lie between 1 and --frames ({args.frames}), got {args.drift_from}")
    every = max(1, args.frames // 10)

    def report(frame) -> None:
        if (frame.index + 1) % every == 0:
            print(f"  {frame.index + 1} of {args.frames} frames", flush=True)

    frames = stream_frames(
        args.part, args.frames, args.out, args.drift, args.drift_from, args.rate, args.seed, args.defect_rate, report
    )
    drifted = sum(frame.drifted for frame in frames)
    defective = sum(frame.defective for frame in frames)
    print(
        f"{args.part}: {len(frames)} frames in {args.out} ({defective} defective, {drifted} drifted: {args.drift}); "
        f"what each shows: {args.out / MANIFEST}"
    )
    return 0


def generate(args: argparse.Namespace) -> int:
    if args.stream:
        return generate_stream(args)
    if args.part is not None:
        raise ValueError("--part names the part of a --stream; for parts in the MVTec AD layout use --parts")
    from engine.ingest.importer import import_dataset
    from engine.ingest.synthetic.parts import part_number
    from engine.ingest.synthetic.plant import generate_part, plan_part

    parts = list(dict.fromkeys(args.parts))
    for part in parts:
        part_number(part)
    plan_part(args.images, args.train)  # a bad split is refused before anything is written
    if args.sheet:
        from engine.ingest.synthetic.sheet import write_sheet

        path = write_sheet(parts, args.seed, args.sheet, args.images)
        print(f"contact sheet of {', '.join(parts)} (seed {args.seed}, {args.images}-image parts): {path}")
        return 0
    store = args.store if args.store else (DEFAULT_STORE if DEFAULT_STORE.exists() else None)
    registered = _registered_here([args.out / part for part in parts], store, args.replace)
    for part in parts:
        part_dir = generate_part(part, args.images, args.seed, args.out, workers=args.workers, n_train=args.train)
        print(f"{part}: {args.images} images in {part_dir}")
        names = [part] if args.store else []
        names += [name for name in registered.get(args.out / part, []) if name not in names]
        for name in names:
            import_dataset("mvtec", name, part_dir, store or DEFAULT_STORE)
            print(f"{name}: registered in {store}")
    return 0


def _registered_here(part_dirs: list[Path], store: Path | None, replace: bool) -> dict[Path, list[str]]:
    """Parts `store` has registered at each of `part_dirs`; refuses to overwrite them unless `replace`."""
    from store import dataset_parts

    if store is None or not store.exists():
        return {}
    registered = dataset_parts(store)
    roots = [Path(root).resolve() for root in registered["root"]]
    found = {
        part_dir: [part for part, root in zip(registered["part"], roots, strict=True) if root == part_dir.resolve()]
        for part_dir in part_dirs
    }
    found = {part_dir: parts for part_dir, parts in found.items() if parts}
    if found and not replace:
        held = "; ".join(f"{part_dir} holds {', '.join(parts)}" for part_dir, parts in found.items())
        raise FileExistsError(
            f"{held}, registered in {store}: generating over it would change the images its runs were scored on. "
            "Choose another --out, or add --replace to regenerate and register again"
        )
    return found


def add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=["mvtec", "folder", "elpv"], required=True)
    parser.add_argument("--part", required=True, help="name the images are registered under")
    parser.add_argument("--limit", type=positive_int, help="elpv only: at most this many images per class")
    add_store(parser)
    parser.add_argument("path", nargs="?", type=Path, help="dataset folder (not used for --layout elpv)")
    parser.set_defaults(run=import_images)


def import_images(args: argparse.Namespace) -> int:
    from engine.analysis.image_sizes import sizes_in_words
    from engine.ingest.importer import import_dataset
    from store import part_images

    dataset = import_dataset(
        args.layout,
        args.part,
        args.path,
        args.store,
        limit=args.limit,
        warn=lambda path, why: print(f"warning: {path}: {why}", file=sys.stderr),
    )
    masks = "with masks" if dataset.has_masks else "no masks: pixel metrics will be n/a"
    sizes = sizes_in_words(part_images(dataset.part, args.store))
    print(f"{dataset.part}: {dataset.n_images} images ({sizes}) from {dataset.source} ({masks}) -> {args.store}")
    return 0


PARSERS = {"generate": add_generate, "import": add_import}
