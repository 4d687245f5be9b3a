"""Benchmark: DICOM instances written per second by synthetic.imaging, against the 1,000 instances/s target.

Full-scale generation writes ≈250,000 instances, so the writer must keep up with one core. Writes a mix of
typical studies (default: 300 CT + 300 MR + 100 CR instances, 3 instances per series) into a temp dir that
is removed afterwards, and prints instances/s, MB/s and the ratio to the target.

    .venv/bin/python benchmarks/bench_dicom.py [--ct N] [--mr N] [--cr N] [--matrix 64]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from synthetic.imaging import StudySpec, write_study

TARGET = 1000.0  # instances per second, one core, matrix 64
# (modality, body part, description, series, images per series) as in procedures.csv
KINDS = {
    "CT": ("CT", "HEAD", "頭部ＣＴ（単純）", 1, 24),
    "MR": ("MR", "HEAD", "頭部ＭＲＩ（ＤＷＩ・ＦＬＡＩＲ・Ｔ２＊・ＭＲＡ）", 4, 24),
    "CR": ("CR", "CHEST", "胸部.Ｘ線単純撮影.立位正面(A→P)", 1, 1),
}


def specs(kind: str, instances: int, cap: int) -> list[StudySpec]:
    modality, body_part, description, series, images = KINDS[kind]
    per_study = series * min(images, cap)
    return [
        StudySpec(
            study_uid=f"2.25.{10**30 + 7919 * i + len(kind) * 10**12 + ord(kind[0])}",
            accession=f"{20240000000 + i}",
            modality=modality,
            body_part=body_part,
            description=description,
            study_time=dt.datetime(2024, 4, 1, 8, 30) + dt.timedelta(minutes=17 * i),
            series=series,
            images_per_series=images,
            patient_id=f"{100000 + i:08d}",
            name_romaji="Yamada^Taro",
            name_kanji="山田^太郎",
            name_kana="ヤマダ^タロウ",
            birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=97 * i),
            sex="MF"[i % 2],
            institution="金沢市立病院",
            referring_physician="Sato^Hanako=佐藤^花子=サトウ^ハナコ",
        )
        for i in range(-(-instances // per_study))
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ct", type=int, default=300)
    parser.add_argument("--mr", type=int, default=300)
    parser.add_argument("--cr", type=int, default=100)
    parser.add_argument("--matrix", type=int, default=64)
    parser.add_argument("--cap", type=int, default=3, help="max images per series")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rhin-dicom-"))
    try:
        total = size = 0
        elapsed = 0.0
        for kind, wanted in (("CT", args.ct), ("MR", args.mr), ("CR", args.cr)):
            batch = specs(kind, wanted, args.cap)
            start = time.perf_counter()
            paths = [
                p
                for spec in batch
                for p in write_study(spec, work, matrix=args.matrix, max_images_per_series=args.cap)
            ]
            took = time.perf_counter() - start
            nbytes = sum(p.stat().st_size for p in paths)
            print(
                f"{kind}: {len(paths):6d} instances in {took:6.3f} s = {len(paths) / took:8.0f} instances/s"
            )
            total, size, elapsed = total + len(paths), size + nbytes, elapsed + took
        rate = total / elapsed
        print(f"all: {total:6d} instances, {size / 1e6:.1f} MB in {elapsed:.3f} s")
        print(f"     {rate:.0f} instances/s, {size / 1e6 / elapsed:.1f} MB/s")
        verdict = "OK" if rate >= TARGET else "BELOW TARGET"
        print(f"     ratio to target ({TARGET:.0f}/s): {rate / TARGET:.2f} {verdict}")
        return 0 if rate >= TARGET else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
