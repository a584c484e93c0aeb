"""Re-create the demo media in this folder (committed; run only to change them).

    .venv/bin/python manifests/media/make_media.py

- astronaut.jpg: `skimage.data.astronaut()` — Eileen Collins, NASA photograph, public domain;
  a real head-and-shoulders portrait that ships with scikit-image.
- welcome.mp3: speech made by espeak-ng (voice gmw/en-gb-x-rp, 150 wpm), encoded to MP3 with
  imageio-ffmpeg's ffmpeg, so the demo's audio job also exercises compressed-audio decoding.
"""

import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent
TEXT = (
    "Good evening. This short clip was spoken by a computer voice, and the face you see "
    "was animated from a single photograph."
)


def main() -> None:
    Image.fromarray(data.astronaut()).save(HERE / "astronaut.jpg", quality=90)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "gmw/en-gb-x-rp", "-s", "150", "-w", str(wav), TEXT], check=True)
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(wav),
             "-ac", "1", "-ar", "22050", "-b:a", "48k", str(HERE / "welcome.mp3")],
            check=True,
        )


if __name__ == "__main__":
    main()
