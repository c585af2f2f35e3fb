"""Plain tests of server/buckets.py (kohya's bucket algorithm) against a hand-computed example."""

from __future__ import annotations

from training_studio.server.buckets import bucket_report, make_bucket_resolutions

# resolution 512, step 64, min 256, max 1024: max_area = 262,144; for each width w from 256 to 1024 the
# height is min(1024, (262144 // w) // 64 * 64), kept when >= 256, added both ways round; plus 512x512.
HAND_COMPUTED_512 = [
    (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640), (448, 576), (512, 512),
    (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256), (1024, 256),
]


def test_bucket_resolutions_match_the_hand_computed_kohya_list():
    assert make_bucket_resolutions(512, 256, 1024, 64) == HAND_COMPUTED_512


def test_bucket_report_matches_the_hand_computed_example():
    sizes = [
        ("a", 1000, 1000),  # ratio 1 -> 512x512, scaled by 0.512
        ("b", 300, 300),  # 512x512, scaled by 1.71: upscaled
        ("c", 1536, 1024),  # ratio 1.5: 640x384 (1.667, error .167) beats 576x448 (1.286, error .214)
        ("d", 512, 512),  # exactly a bucket, scale 1: not upscaled
        ("e", 400, 600),  # ratio .667: 384x640 (.6) beats 448x576 (.778); width-bound, scale 640/600: upscaled
        ("f", 640, 384),  # exactly a bucket
        ("g", None, None),  # no stored size
    ]
    report = bucket_report(sizes, resolution=512, step=64, batch_size=2)
    assert [(b.width, b.height, b.files) for b in report.buckets] == [
        (384, 640, ["e"]), (512, 512, ["a", "b", "d"]), (640, 384, ["c", "f"])]
    assert report.upscaled == ["b", "e"]
    assert report.small_buckets == [(384, 640)]
    assert report.unsized == ["g"]


def test_max_bucket_follows_a_resolution_above_1024():
    resolutions = make_bucket_resolutions(1536, 256, 1536, 64)
    assert (1536, 1536) in resolutions
    report = bucket_report([("x", 3000, 3000)], resolution=1536)
    assert [(b.width, b.height) for b in report.buckets] == [(1536, 1536)]
