import numpy as np
import pytest

from models.eval.metrics import (
    conn,
    grad,
    imq,
    instance_errors,
    iou,
    mad,
    matting_errors,
    mse,
    noc,
    noc_at,
    sad,
    similarity,
    unknown_region,
)


def _blob(h=48, w=48, cx=24, cy=24, r=10, soft=3.0):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip((r - np.hypot(xx - cx, yy - cy)) / soft + 0.5, 0, 1)


def test_sad_mse_mad_hand_computed():
    gt = np.array([[0.0, 1.0], [0.5, 0.25]])
    pred = np.array([[0.5, 1.0], [0.0, 0.25]])
    # |diff| = 0.5, 0, 0.5, 0 -> sum 1.0; squared sum 0.5
    assert sad(pred, gt) == pytest.approx(1.0 / 1000)
    assert mse(pred, gt) == pytest.approx(0.5 / 4)
    assert mad(pred, gt) == pytest.approx(1.0 / 4)
    mask = np.array([[True, False], [False, False]])
    assert mse(pred, gt, mask) == pytest.approx(0.25)
    assert mad(pred, gt, mask) == pytest.approx(0.5)


def test_uint8_inputs_are_scaled():
    gt = np.array([[0, 255]], np.uint8)
    pred = np.array([[255, 255]], np.uint8)
    assert sad(pred, gt) == pytest.approx(1e-3)


def test_trimap_restricts_to_unknown():
    trimap = np.array([[0, 128], [255, 128]], np.uint8)
    assert unknown_region(trimap).tolist() == [[False, True], [False, True]]
    gt = np.zeros((2, 2))
    pred = np.array([[1.0, 0.5], [1.0, 0.0]])
    errs = matting_errors(pred, gt, trimap)
    assert errs["sad"] == pytest.approx(0.5 / 1000) and errs["mse"] == pytest.approx(0.125)
    assert unknown_region(np.array([[0.0, 0.5, 1.0]])).tolist() == [[False, True, False]]


def test_identical_mattes_have_zero_error():
    a = _blob()
    errs = matting_errors(a, a)
    assert all(v == 0 for v in errs.values())


def test_grad_and_conn_positive_when_different():
    gt = _blob(soft=3.0)
    pred = _blob(soft=0.5)
    assert grad(pred, gt) > 0 and conn(pred, gt) > 0
    holes = gt.copy()
    holes[20:28, 20:28] = 0.0
    assert conn(holes, gt) > conn(gt, gt) == 0.0


def test_iou():
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[:2] = 1.0
    b[1:3] = 0.8
    assert iou(a, b) == pytest.approx(4 / 12)
    assert iou(a, a) == 1.0 and iou(b * 0, a * 0) == 1.0
    assert iou(b, a, threshold=0.9) == 0.0


def test_imq_identical_is_one():
    gts = np.stack([_blob(cx=12), _blob(cx=36)])
    res = imq(gts, gts)
    assert res.tp == 2 and res.fp == res.fn == 0
    assert res.imq == pytest.approx(dict.fromkeys(("mad", "mse", "grad", "conn"), 1.0))


def test_imq_order_of_predictions_does_not_matter():
    gts = np.stack([_blob(cx=12, r=8), _blob(cx=36, r=8)])
    res = imq(gts[::-1], gts)
    assert res.imq["mad"] == pytest.approx(1.0)
    assert sorted((i, j) for i, j, _ in res.matches) == [(0, 1), (1, 0)]


def test_imq_empty_prediction_is_zero():
    gts = np.stack([_blob(cx=12, r=8), _blob(cx=36, r=8)])
    assert imq(np.zeros((0, 48, 48)), gts).imq["mad"] == 0.0
    assert imq(np.zeros((2, 48, 48)), gts).imq["conn"] == 0.0  # all-zero mattes are no prediction


def test_imq_one_missed_instance():
    gts = np.stack([_blob(cx=12, r=8), _blob(cx=36, r=8)])
    pred = np.clip(gts[0] + 0.05 * (gts[0] > 0), 0, 1)[None]  # a slightly wrong first instance
    s1 = similarity(instance_errors(pred[0], gts[0]))
    assert 0 < s1["mad"] < 1
    res = imq(pred, gts)
    assert res.tp == 1 and res.fn == 1 and res.fp == 0
    for k in ("mad", "mse", "grad", "conn"):
        assert res.imq[k] == pytest.approx(s1[k] / 1.5)


def test_imq_false_positive_and_low_iou():
    gts = _blob(cx=12, r=8)[None]
    far = _blob(cx=40, cy=40, r=5)[None]
    res = imq(np.concatenate([gts, far]), gts)
    assert res.tp == 1 and res.fp == 1 and res.imq["mad"] == pytest.approx(1 / 1.5)
    miss = imq(far, gts)  # IoU 0: not a true positive
    assert miss.tp == 0 and miss.fp == 1 and miss.fn == 1 and miss.imq["mad"] == 0.0


def test_imq_merge_and_empty():
    a = _blob()[None]
    total = imq(a, a).merge(imq(np.zeros((0, 48, 48)), a))
    assert total.tp == 1 and total.fn == 1 and total.imq["mad"] == pytest.approx(1 / 1.5)
    assert imq(np.zeros((0, 4, 4)), np.zeros((0, 4, 4))).imq["mad"] == 1.0


def test_noc():
    curve = [0.5, 0.7, 0.86, 0.88, 0.91, 0.95]
    assert noc(curve, 0.9) == 5
    assert noc(curve, 0.85) == 3
    assert noc_at(curve) == {"noc@85": 3, "noc@90": 5}
    assert noc([0.5, 0.6], 0.9, max_clicks=20) == 20
    assert noc([0.5, 0.6], 0.9) == 2
    assert noc([0.8, 0.95], 0.9, clicks=[3, 6]) == 6
    with pytest.raises(ValueError):
        noc([0.5], 0.9, clicks=[1, 2])
