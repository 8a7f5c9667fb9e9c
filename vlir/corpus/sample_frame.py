"""A sample in the frame of its decoded image: the build's last word on a sample's geometry before
it is annotated.

:func:`oriented_sample` puts a record whose annotations were made on an image file's raw pixels
into the upright frame :func:`vlir.images.decode_oriented` returns (EXIF orientation applied, as
Hugging Face ``datasets`` decodes the stored bytes), and :func:`clean_evidence` clips evidence to
the image. See docs/corpus.md, "Images".
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from vlir import geometry, images
from vlir.records import Region, Sample


def clean_evidence(sample: Sample, stats: Counter) -> Sample:
    """Clip evidence to the image; drop (and count) regions entirely outside it."""
    kept: list[Region] = []
    for region in sample.evidence:
        clipped = geometry.clip(region.box, sample.width, sample.height)
        if clipped is None:
            stats["evidence_outside_image"] += 1
            continue
        if clipped != region.box:
            stats["evidence_clipped"] += 1
        kept.append(Region(clipped, region.label, region.kind))
    if tuple(kept) == sample.evidence:
        return sample
    return dataclasses.replace(sample, evidence=tuple(kept))


def oriented_sample(sample: Sample, size: tuple[int, int], orientation: int, stats: Counter) -> Sample:
    """The sample in the upright frame its image is decoded in. Source annotations are taken to be
    in the frame whose size the record declares: a record declaring the upright size is kept; one
    declaring the file's raw size while the EXIF tag swaps the sides (5-8) has its size and evidence
    turned with the pixels (counted ``exif_reoriented``). Tags that keep the size (2-4: mirror,
    180 degrees) cannot be told apart by size: the annotations are taken as upright, as a viewer
    (and ``datasets``) shows the image."""
    if orientation not in images.SWAPPING_ORIENTATIONS or (sample.width, sample.height) != size[::-1] \
            or size[0] == size[1]:
        return sample
    raw_w, raw_h = sample.width, sample.height
    evidence = []
    for region in sample.evidence:
        evidence.append(Region(geometry.orient_box(region.box, orientation, raw_w, raw_h), region.label, region.kind))
    stats["exif_reoriented"] += 1
    meta = {**sample.meta, "exif_orientation": orientation}
    return dataclasses.replace(sample, width=size[0], height=size[1], evidence=tuple(evidence), meta=meta)
