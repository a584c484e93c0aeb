"""Control-map throughput: frames per second for C^d + C^m + C^w (+ mask) + flow together, a new pose
every frame, at 128², 256² and 512² (issue 3 target: >= 20 frames/s at 256² on the 2-core CPU machine),
and the landmark + fitting time per portrait.

    .venv/bin/python bench/controls.py [--frames 48] [--sizes 128 256 512] [--batch 16]

Reports the body-model forward (anny, batched) and the rendering separately, and both together, as wall
time (what a user waits) and CPU time (what it costs; close to the wall time on an idle machine).
Set ANNY_CACHE_DIR / VLOGGER_CACHE_DIR like the tests do (default: .cache/ in the checkout).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("VLOGGER_CACHE_DIR", str(ROOT / ".cache"))
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16, help="frames per body-model forward")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--no-fit", dest="fit", action="store_false", help="skip the per-portrait fitting times")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="intra-op threads for the body model (on a busy 2-core machine 1 is ~10x faster "
                             "than 2: OpenMP threads spin waiting for each other)")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.torch_threads)

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.body.model import CANONICAL_JOINTS, head_rotation
    from vlogger_cli.controls.texture import reference_texture
    from vlogger_cli.camera import Camera
    from vlogger_cli.gl import ensure_gl_platform
    from vlogger_cli.controls.render import ControlRenderer

    print(f"platform: {ensure_gl_platform()}, torch threads: {torch.get_num_threads()}")
    model = anny_body()
    ref = model.zero_params(1, distance=1.0)
    ref.transl[:, 1] = -0.5

    # A new pose and expression every frame: head turning and nodding, jaw opening, arms swinging.
    t = torch.linspace(0, 2 * np.pi, args.frames)
    params = ref.expand(args.frames).map(lambda x: x.clone())
    for i in range(args.frames):
        angle = float(t[i])
        params.pose[i, CANONICAL_JOINTS.index("head")] = head_rotation(yaw=25 * np.sin(angle), pitch=10 * np.cos(angle))
    params.pose[:, CANONICAL_JOINTS.index("elbow_l"), 0] = 0.5 * torch.sin(2 * t)
    params.expression[:, model.expression_names.index("jawOpen")] = 0.4 + 0.4 * torch.sin(3 * t)

    with torch.no_grad():
        model(params.map(lambda x: x[: args.batch]))  # warm-up (kernel compilation)
        start, cpu = time.perf_counter(), time.process_time()
        vertices = torch.cat([model(params.map(lambda x: x[i : i + args.batch])).vertices
                              for i in range(0, args.frames, args.batch)]).numpy()
        body_s = (time.perf_counter() - start) / args.frames
        body_cpu = (time.process_time() - cpu) / args.frames
        ref_vertices = model(ref).vertices[0].numpy()
    print(f"body model (anny, batch {args.batch}): {1000 * body_s:.1f} ms/frame (CPU {1000 * body_cpu:.1f} ms)")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other processes slow the wall times)")

    for size in args.sizes:
        camera = Camera.for_image(size, size, fov_deg=30)
        yy, xx = np.mgrid[0:size, 0:size]
        portrait = np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) % 256], -1).astype(np.uint8)
        texture = reference_texture(portrait, camera, ref_vertices, model.faces)
        with ControlRenderer.for_model(model, camera, texture) as renderer:
            renderer.render(vertices[:2])  # warm-up
            start, cpu = time.perf_counter(), time.process_time()
            renderer.render(vertices)
            render_s = (time.perf_counter() - start) / args.frames
            render_cpu = (time.process_time() - cpu) / args.frames
        total = render_s + body_s
        print(f"{size:4d}²: render {1000 * render_s:6.1f} ms/frame (CPU {1000 * render_cpu:6.1f} ms) -> "
              f"maps {1 / render_s:5.1f} frames/s, with the body model {1 / total:5.1f} frames/s")
    if args.fit:
        bench_fit(model)


def bench_fit(model) -> None:
    """Landmarks + fit per portrait: the astronaut, plus ../shared/testdata/portraits when present."""
    from skimage import data

    from vlogger_cli.body.fit import fit_portrait
    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.body.portrait import load_portrait

    images = {"astronaut": data.astronaut()}
    testdata = ROOT.parent / "shared" / "testdata" / "portraits"
    for path in sorted(testdata.glob("*.jpg")) if testdata.is_dir() else []:
        images[path.stem] = load_portrait(path)
    for name, image in images.items():
        start = time.perf_counter()
        landmarks = detect_landmarks(image, source=name)
        mid = time.perf_counter()
        fit = fit_portrait(image, landmarks, model)
        end = time.perf_counter()
        print(f"fit {name:28s} {image.shape[1]}x{image.shape[0]}: landmarks {mid - start:5.2f} s, "
              f"fit {end - mid:5.1f} s, face error {100 * fit.relative_face_error:.2f} % of the face diagonal")


if __name__ == "__main__":
    main()
