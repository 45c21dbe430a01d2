"""Every mark is honoured, in every pipeline that takes clicks, on real COCO photos, through the API.

Round 1 is the person's box; round 2 is one click at the deepest point of the largest error
of round 1 against the ground truth (DFIMat's simulator): a background click on the largest
wrongly included region, or a foreground click on the largest missed part. After round 2 the
matte under the click is exactly 0 (background) or 1 (foreground) in every pipeline, and the
region the click corrects moves with it. How far it moves is bounded: the learned pipelines'
correction reaches a few times the click's depth (``service.engines.marks.LOCAL_REACH``), so on
these photos dfimat flips 0.17-0.51 of the region (mean 0.33; the unbounded split flipped most of
it on 5 of 6, and on other photos took the person beside the region too: ``test_marks_reach``);
the classical engine and prompted SMat move it less (classical's misses are mostly textured hair,
where the geodesic search stops early; measured mean flipped share 0.23 and 0.30). The bar is
that it moves at all: a mean flipped share of at least 0.15.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from models.eval.simulator import deepest_point, error_regions, gt_box
from service.evaluation.samples import Sample
from service.process import ServerProcess
from tests.conftest import ALICE
from tests.support.images import decode_png
from tests.support.shared_data import coco_people, require


@pytest.fixture(scope="module")
def targets() -> list[Sample]:
    return coco_people()


def _session_round(server: ServerProcess, sid: str, prompts: list[dict]) -> np.ndarray:
    response = httpx.post(
        f"{server.url}/v1/sessions/{sid}/rounds", json={"prompts": prompts}, headers=ALICE, timeout=120
    )
    assert response.status_code == 200, response.text
    png = httpx.get(f"{server.url}{response.json()['alpha_url']}", headers=ALICE, timeout=60)
    assert png.status_code == 200
    return decode_png(png.content).astype(np.float32) / 255.0


@pytest.mark.parametrize("model", ["dfimat", "classical", "smat"])
def test_a_corrective_click_is_honoured_and_its_region_follows(
    api_server: ServerProcess, targets: list[Sample], model: str
) -> None:
    shares = []
    for target in targets:
        with open(
            require("evaldata", "coco128seg_persons", "image", f"{target.name.split('#')[0]}.jpg"), "rb"
        ) as f:
            created = httpx.post(
                f"{api_server.url}/v1/sessions",
                files={"image": ("photo.jpg", f.read(), "image/jpeg")},
                data={"model": model},
                headers=ALICE,
                timeout=120,
            )
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        box = gt_box(target.alpha)
        first = _session_round(api_server, sid, [box.model_dump()])
        region = error_regions(first, target.alpha)[0]
        x, y, _ = deepest_point(region.mask)
        second = _session_round(api_server, sid, [{"type": "click", "x": x, "y": y, "label": region.label}])
        if region.label == "bg":
            assert second[y, x] == 0.0, (target.name, model)
            flipped = float((second[region.mask] < 0.5).mean())
        else:
            assert second[y, x] == 1.0, (target.name, model)
            flipped = float((second[region.mask] >= 0.5).mean())
        shares.append(flipped)
        httpx.delete(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE, timeout=30)
    assert float(np.mean(shares)) >= 0.15, f"{model}: flipped shares {shares}"
