"""Make the demo's inputs procedurally (no third-party images): a small picture with edges, gradients,
fine stripes and text-like marks, a folder of crops of it, and a short panning video with a tone.

    python scripts/make_sample.py [OUT_DIR]        # default: out/sample
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def picture(width: int = 320, height: int = 200) -> np.ndarray:
    """An RGB picture with what SR has to work on: hard edges, smooth gradients, thin lines, small shapes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.5 * np.sin(x / 23.0) * np.cos(y / 31.0)
    g = x / width
    b = 0.5 + 0.5 * np.sin(np.hypot(x - width * 0.7, y - height * 0.4) / 6.0)  # rings: fine detail
    img = Image.fromarray((np.dstack([r, g, b]) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for i in range(8):  # stripes of decreasing width
        x0 = 10 + i * 14
        draw.rectangle([x0, 20, x0 + max(1, 8 - i), 90], fill=(250, 250, 240))
    draw.ellipse([150, 110, 230, 190], outline=(20, 20, 20), width=3)
    draw.polygon([(40, 180), (90, 110), (130, 185)], fill=(200, 40, 40), outline=(0, 0, 0))
    draw.text((160, 20), "edgesr 0123", fill=(0, 0, 0))
    draw.text((160, 40), "super-resolution", fill=(255, 255, 255))
    return np.asarray(img)


def video(path: Path, frames: np.ndarray, fps: int = 12, *, codec: str = "libx264", pix_fmt: str = "yuv420p",
          options: dict[str, str] | None = None) -> None:
    """A video of `frames` (H.264 yuv420p unless told otherwise; libx264rgb, bgr0, crf 0 is lossless) with a
    440 Hz AAC tone as long as the frames (needs PyAV: pip install 'edgesr[video]')."""
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = pix_fmt
        v.options = dict(options or {})
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        for img in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        t = np.arange(int(48000 * len(frames) / fps)) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, k
            for packet in a.encode(frame):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/sample")
    (out / "folder" / "crops").mkdir(parents=True, exist_ok=True)
    img = picture()
    Image.fromarray(img).save(out / "sample.png")
    for i, (x, y) in enumerate([(0, 0), (100, 40), (200, 100)]):
        target = out / "folder" / ("crops" if i else "") / f"crop_{i}.png"
        Image.fromarray(img[y:y + 96, x:x + 120]).save(target)
    try:
        video(out / "sample.mp4", [img[40:112, 4 * i: 4 * i + 128] for i in range(24)])
    except ImportError:
        print("PyAV not installed: skipped the sample video (pip install 'edgesr[video]')")
    print(f"wrote {out}/sample.png, {out}/folder/ and {out}/sample.mp4")


if __name__ == "__main__":
    main()
