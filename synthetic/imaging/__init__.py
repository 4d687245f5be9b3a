"""Small, valid, deterministic DICOM studies for the synthetic world's imaging orders.

One IOD per modality (CT, MR, CR, DX, US, RF, XA, ES) with every mandatory module, Japanese names in
``ISO 2022 IR 87`` and phantom-like pixel data. Same spec → byte-identical files: UIDs are name-based
(UUID v5 under ``2.25``), times come from the study time and pixels from analytic ellipsoids.

Speed matters (≈250,000 instances at full scale): each series' dataset is built once and only the
per-instance attributes and pixel data change between writes; pixel buffers are memoised because many
studies share modality, body part and slice position.
"""

from __future__ import annotations

from synthetic.imaging.layers import instance_dataset
from synthetic.imaging.spec import MODALITIES, SOP_CLASSES, StudySpec, instance_uid
from synthetic.imaging.writer import write_study

__all__ = ["MODALITIES", "SOP_CLASSES", "StudySpec", "instance_dataset", "instance_uid", "write_study"]
