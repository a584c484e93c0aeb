"""demo_check.dataset_report: the cascade's face PSNR on a dataset's clips, next to the warp preview's, for the
final stage and for the base at its own size (how the per-stage figures in weights/video/README.md are made)."""

import math

from vlogger_cli.train.video_data import write_synthetic_dataset
from vlogger_cli.video.demo_check import dataset_report


def test_dataset_report_gives_final_and_base_figures(build, tmp_path):
    write_synthetic_dataset(tmp_path / "d", clips=1, frames=6, size=32, val_clips=1)
    weights = tmp_path / "weights"
    # untrained residual models: the base samples the warp at 16², the SR its detail-transfer base at 32²
    build.model("tiny", trained=False, resolution=16, flow_reference=True, residual=True,
                zero_init_out=True).save_pretrained(weights / "video")
    build.model("tiny", trained=False, resolution=32, lowres_resolution=16, residual=True, flow_reference=True,
                zero_init_out=True, detail_transfer=0.08).save_pretrained(weights / "sr" / "32")
    rows = dataset_report(weights, tmp_path / "d", steps=2)
    assert len(rows) == 1
    row = rows[0]
    print(row)
    assert set(row) == {"clip", "model_face_psnr", "warp_face_psnr", "model_psnr", "warp_psnr", "base_face_psnr",
                        "base_warp_face_psnr"}
    assert all(isinstance(v, float) and not math.isnan(v) for k, v in row.items() if k != "clip")
    # the warp-residual base is the warp (rendered at 16²) and the detail SR puts the warp's detail back:
    # both stay near the warp's own figure at their size
    assert abs(row["base_face_psnr"] - row["base_warp_face_psnr"]) < 3.0, row
    assert row["model_face_psnr"] > row["warp_face_psnr"] - 3.0, row
