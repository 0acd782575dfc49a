"""A seeded random sweep of conv2d / pooling configurations (sizes, strides, dilations,
asymmetric pads, groups, depthwise multipliers, batch) against onnxruntime."""
import numpy as np
import pytest

from hostside import neon
from test_onnx_helpers import ort_single, rel_err

TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def _config(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    kind = ("dense", "depthwise", "grouped")[seed % 3]
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    dh, dw = (int(v) for v in rng.integers(1, 3, 2))
    pads = tuple(int(v) for v in rng.integers(0, 3, 4))
    h = int(rng.integers(dh * (kh - 1) + 1, 20))
    w = int(rng.integers(dw * (kw - 1) + 1, 20))
    if kind == "dense":
        c, groups = int(rng.integers(1, 20)), 1
        o = int(rng.integers(1, 20))
    elif kind == "depthwise":
        c = int(rng.integers(2, 40))
        groups, o = c, c * int(rng.integers(1, 3))
    else:
        groups = int(rng.integers(2, 5))
        c, o = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    return dict(n=int(rng.integers(1, 3)), h=h, w=w, c=c, o=o, kh=kh, kw=kw, strides=(sh, sw),
                dilations=(dh, dw), pads=pads, groups=groups, bias=bool(seed % 2),
                activation=(None, "relu", "relu6")[seed % 3 if kind != "dense" else (seed // 3) % 3])


@pytest.mark.parametrize("seed", range(45))
def test_conv2d_random_configs(seed):
    cfg = _config(seed)
    rng = np.random.default_rng(1000 + seed)
    x = rng.uniform(-2, 2, (cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(np.float32)
    wt = rng.uniform(-1, 1, (cfg["o"], cfg["kh"], cfg["kw"], cfg["c"] // cfg["groups"])).astype(np.float32)
    b = rng.uniform(-1, 1, cfg["o"]).astype(np.float32) if cfg["bias"] else None
    y = neon.conv2d(x, wt, b, cfg["strides"], cfg["dilations"], cfg["pads"], cfg["groups"],
                    cfg["activation"])
    inits = {"w": wt.transpose(0, 3, 1, 2)}
    if b is not None:
        inits["b"] = b
    pt, pl, pb, pr = cfg["pads"]
    ref = ort_single("Conv", x.transpose(TO_NCHW), inits, strides=list(cfg["strides"]),
                     dilations=list(cfg["dilations"]), pads=[pt, pl, pb, pr],
                     group=cfg["groups"]).transpose(TO_NHWC)
    if cfg["activation"] == "relu":
        ref = np.maximum(ref, 0)
    elif cfg["activation"] == "relu6":
        ref = np.clip(ref, 0, 6)
    assert y.shape == ref.shape, cfg
    assert rel_err(y, ref) < 1e-5, cfg


@pytest.mark.parametrize("seed", range(20))
def test_pooling_random_configs(seed):
    rng = np.random.default_rng(seed)
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    strides = tuple(int(v) for v in rng.integers(1, 4, 2))
    pads = (int(rng.integers(0, kh)), int(rng.integers(0, kw)), int(rng.integers(0, kh)),
            int(rng.integers(0, kw)))
    x = rng.uniform(-3, 3, (2, int(rng.integers(kh, 15)), int(rng.integers(kw, 15)), 3)).astype(np.float32)
    include = bool(seed % 2)
    attrs = dict(kernel_shape=[kh, kw], strides=list(strides), pads=[pads[0], pads[1], pads[2], pads[3]])
    ref = ort_single("AveragePool", x.transpose(TO_NCHW), count_include_pad=int(include),
                     **attrs).transpose(TO_NHWC)
    assert rel_err(neon.avg_pool2d(x, (kh, kw), strides, pads, include), ref) < 1e-6
    ref = ort_single("MaxPool", x.transpose(TO_NCHW), **attrs).transpose(TO_NHWC)
    assert np.array_equal(neon.max_pool2d(x, (kh, kw), strides, pads), ref)
