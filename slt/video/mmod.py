"""dlib's CNN face detector (``mmod_human_face_detector.dat``) re-implemented in PyTorch, box for box.

The released SONAR ASL models were trained on crops located with dlib's CNN ("MMOD") face detector. dlib runs it
on the CPU only and slowly (seconds per frame); this module reads the same weights file without dlib and runs the
same computation in torch, on the CPU or a GPU, many frames per forward pass. It reproduces dlib's boxes exactly
(tests/test_mmod.py compares against dlib itself); see docs/MMOD.md for the file format and every dlib quirk
that has to be copied for that (image pyramid arithmetic, tile packing, box mapping, non-max suppression).

Pieces, in the order the data flows:
1. ``read_mmod_file``: dlib's serialization (compact integers, ``float_details`` floats, tensors) -> numpy weights.
2. ``_bilinear``: dlib's ``resize_image`` (bilinear) bit for bit, used for ``pyramid_up`` (uint8 RGB) and for the
   5/6 image pyramid inside the input tensor (float32 planes).
3. ``_pyramid_layout``: where each pyramid level sits in the tiled input tensor.
4. ``MMODFaceDetector``: input tensor -> conv net -> score map -> candidate boxes -> dlib's NMS -> image boxes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import itertools
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from slt.errors import CheckpointError, InvalidArgumentError, VideoReadError
from slt.runtime import foreground_cpu_threads, keep_freed_memory

CNN_MODEL_NAME = "mmod_human_face_detector.dat"  # dlib's CNN face detector weights
# A copy of the .dat file, for machines without the face-recognition-models package (e.g. a GPU box).
WEIGHTS_ENV = "SLT_MMOD_WEIGHTS"


def cnn_model_path() -> Path:
    """Path of dlib's CNN face detector: ``$SLT_MMOD_WEIGHTS`` if set, else the file shipped by
    `face-recognition-models` (located without importing it, because importing it pulls in pkg_resources)."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise VideoReadError(f"${WEIGHTS_ENV} names {path}, which is not a file ({CNN_MODEL_NAME} expected).")
        return path
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VideoReadError(
            "The CNN face detector needs the package face-recognition-models (pip install "
            f"face-recognition-models==0.3.0) or a copy of {CNN_MODEL_NAME} named by ${WEIGHTS_ENV}; or use the HOG "
            "detector (detector='hog')."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / CNN_MODEL_NAME
    if not path.is_file():
        raise VideoReadError(f"The CNN face detector model is missing: {path} (reinstall face-recognition-models).")
    return path


Detection = tuple[int, int, int, int, float]  # (left, top, right, bottom, confidence); right/bottom inclusive

# ---------------------------------------------------------------------------------------------------------------
# 1. The weights file
# ---------------------------------------------------------------------------------------------------------------


class _Reader:
    """Sequential reader of dlib's binary serialization format (dlib/serialize.h)."""

    def __init__(self, data: bytes, path: Path):
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(
            f"{self.path} is not a dlib CNN face detector file this reader understands: {what} at byte {self.pos} "
            "(expected dlib's mmod_human_face_detector.dat, e.g. from face-recognition-models 0.3.0)."
        )

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"file ends early (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_(self, signed: bool = True) -> int:
        """dlib's compact integer: a control byte (low 4 bits: byte count, bit 7: negative for signed types)
        followed by that many little-endian magnitude bytes. Zero is stored as one zero byte, never zero bytes."""
        control = self.take(1)[0]
        size = control & 0x0F if signed else control & 0x8F
        if size == 0 or size > 8:
            raise self.fail(f"bad integer control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if signed and control & 0x80 else value

    def uint(self) -> int:
        return self.int_(signed=False)

    def float_(self) -> float:
        """``float_details``: a signed 64-bit mantissa and 16-bit exponent, value = mantissa * 2**exponent
        (exponents 32000/32001/32002 mean inf/-inf/nan). Returned as a Python float (a double)."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail("old ASCII float encoding")
        mantissa = self.int_()
        exponent = self.int_()
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        return special[exponent] if exponent in special else math.ldexp(float(mantissa), exponent)

    def float32(self) -> np.float32:
        """A value dlib deserializes into a C++ float: the exact value rounded once to float32."""
        return np.float32(self.float_())

    def string(self) -> str:
        return self.take(self.uint()).decode("latin-1")

    def bool_(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool {ch!r}")
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        """dlib::tensor: version 2, then num_samples, k, nr, nc, then little-endian float32 values."""
        if (version := self.int_()) != 2:
            raise self.fail(f"tensor version {version}")
        shape = tuple(self.int_() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"tensor shape {shape}")
        count = math.prod(shape)
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_shape(self) -> tuple[int, int, int, int]:
        """dlib::alias_tensor: a view descriptor (version 1, then num_samples, k, nr, nc); no values."""
        if (version := self.int_()) != 1:
            raise self.fail(f"alias tensor version {version}")
        return tuple(self.int_() for _ in range(4))

    def expect(self, value, what: str, got):
        if got != value:
            raise self.fail(f"{what} is {got!r}, expected {value!r}")


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer, optionally followed by dlib's affine layer (a batch norm frozen into scale and shift)
    and a ReLU. Arrays are float32: weight [out, in, k, k], bias/scale/shift [out]."""

    weight: np.ndarray
    bias: np.ndarray
    stride: int
    padding: int
    scale: np.ndarray | None
    shift: np.ndarray | None
    relu: bool


@dataclass(frozen=True)
class MMODWeights:
    """Everything the detector needs from the file."""

    window: tuple[int, int]  # detector window (width, height) in pyramid pixels
    nms_iou: float  # overlap test for non-max suppression (see _overlaps)
    nms_covered: float
    means: np.ndarray  # float32 [3]: R, G, B values subtracted before dividing by 256
    padding: int  # pixels between pyramid tiles
    outer_padding: int  # pixels around the tiled pyramid
    layers: tuple[ConvSpec, ...]  # input side first

    @property
    def n_params(self) -> int:
        return sum(c.weight.size + c.bias.size + (0 if c.scale is None else 2 * c.scale.size) for c in self.layers)


def _read_conv(r: _Reader) -> dict:
    """con_ layer details (versions con_4..con_6; filters are stored flat in ``params`` as weights then biases)."""
    tag = r.string()
    if tag not in ("con_4", "con_5", "con_6"):
        raise r.fail(f"layer tag {tag!r}, expected a conv layer")
    params = r.tensor().reshape(-1)
    n_out = r.int_()
    kr, kc = r.int_(), r.int_()
    sy, sx = r.int_(), r.int_()
    py, px = r.int_(), r.int_()
    filter_shape, bias_shape = r.alias_shape(), r.alias_shape()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        r.float_()
    use_bias = r.bool_() if tag in ("con_5", "con_6") else True
    if tag == "con_6" and r.bool_():
        raise r.fail("conv with fused ReLU (con_6 use_relu) is not supported")
    if kr != kc or sy != sx or py != px or not use_bias:
        raise r.fail("non-square kernel, stride or padding, or a conv without bias")
    n_in = filter_shape[1]
    fits = filter_shape == (n_out, n_in, kr, kc) and bias_shape == (1, n_out, 1, 1)
    if not fits or params.size != n_out * (n_in * kr * kc + 1):
        raise r.fail(f"conv params of size {params.size} do not fit filters {filter_shape} and biases {bias_shape}")
    n_weights = n_out * n_in * kr * kc
    weight = params[:n_weights].reshape(n_out, n_in, kr, kc)
    return {"weight": weight, "bias": params[n_weights:].copy(), "stride": sy, "padding": py}


def _read_affine(r: _Reader) -> tuple[np.ndarray, np.ndarray]:
    """An affine layer, stored either as ``affine_``/``affine_2`` (gamma, beta) or as a full batch norm
    ``bn_con2`` that dlib converts on load: scale = gamma / sqrt(running_var + eps), shift = beta - scale*mean."""
    tag = r.string()
    if tag == "bn_con2":
        params = r.tensor().reshape(-1)
        r.alias_shape(), r.alias_shape()  # gamma/beta views of params
        r.tensor(), r.tensor()  # batch means/invstds: training state
        running_means = r.tensor().reshape(-1)
        running_vars = r.tensor().reshape(-1)
        r.uint()  # num_updates
        r.uint()  # running_stats_window_size
        for _ in range(4):
            r.float_()
        eps = r.float_()
        n = running_means.size
        gamma, beta = params[:n], params[n:]
        # dlib: float tensors, eps (a double) added to each float variance in float arithmetic.
        with np.errstate(all="ignore"):  # a damaged file is reported below as non-finite parameters
            scale = (gamma / np.sqrt(running_vars + np.float32(eps))).astype(np.float32)
            shift = (beta - scale * running_means).astype(np.float32)
        return scale, shift
    if tag in ("affine_", "affine_2"):
        params = r.tensor().reshape(-1)
        r.alias_shape(), r.alias_shape()  # gamma/beta views of params
        r.int_()  # mode
        if tag == "affine_2" and r.bool_():
            raise r.fail("disabled affine layer")
        n = params.size // 2
        return params[:n].copy(), params[n:].copy()
    raise r.fail(f"layer tag {tag!r}, expected a batch-norm/affine layer")


def _read_relu(r: _Reader) -> None:
    tag = r.string()
    if tag == "relu_2":
        if r.bool_():
            raise r.fail("disabled ReLU")
    elif tag != "relu_":
        raise r.fail(f"layer tag {tag!r}, expected a ReLU")


# The network of dlib's face detector example, input side first: three stride-2 5x5 conv/affine/relu blocks,
# three stride-1 ones, a final 9x9 conv giving one score per position.
_LAYER_KINDS = ("con", "affine", "relu") * 6 + ("con",)


@functools.lru_cache(maxsize=4)
def read_mmod_file(path: str | Path) -> MMODWeights:
    """Parse dlib's serialized ``loss_mmod`` network (no dlib needed). The whole file must be consumed.

    Layout: loss layer (version, ``loss_mmod_``, mmod_options), then one add_layer per layer from the output side
    inwards, each written as its version followed by its sub-network, so the versions come first (outermost
    first), then the input layer, then each layer's details from the input side outwards, each followed by
    that add_layer's training state (flags and empty gradient/output tensors)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"Cannot read the CNN face detector weights {path}: {e.strerror or e}.") from e
    r = _Reader(data, path)
    r.expect(1, "loss layer version", r.int_())
    r.expect("loss_mmod_", "loss tag", r.string())
    options_version = r.int_()
    if options_version == 1:
        windows = [(r.uint(), r.uint(), "")]
    elif 2 <= options_version <= 4:
        windows = []
        for _ in range(r.uint()):
            w_version = r.int_()
            width, height = r.uint(), r.uint()
            label = r.string() if w_version == 2 else ""
            windows.append((width, height, label))
    else:
        raise r.fail(f"mmod_options version {options_version}")
    if len(windows) != 1:
        raise r.fail(f"{len(windows)} detector windows (this port supports one)")
    for _ in range(3):  # loss per false alarm / missed target, truth match IoU: training only
        r.float_()
    nms_iou, nms_covered = r.float_(), r.float_()
    r.float_(), r.float_()  # overlaps_ignore: training only
    if options_version >= 3 and r.uint() != 1:
        raise r.fail("mmod_options without an image pyramid")
    if options_version >= 4:
        if r.bool_():
            raise r.fail("bounding-box regression (not used by the face detector)")
        r.float_()

    n_layers = len(_LAYER_KINDS)
    outer_versions = [r.int_() for _ in range(n_layers - 1)]
    if any(v not in (1, 2) for v in outer_versions):
        raise r.fail(f"add_layer versions {outer_versions}")
    inner_version = r.int_()
    if inner_version not in (2, 3):
        raise r.fail(f"input add_layer version {inner_version}")
    input_tag = r.string()
    if input_tag not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise r.fail(f"input layer {input_tag!r}")
    means = np.array([r.float32(), r.float32(), r.float32()], dtype=np.float32)
    padding, outer_padding = (r.uint(), r.uint()) if input_tag.endswith("2") else (10, 11)

    layers: list[ConvSpec] = []
    conv: dict | None = None
    # add_layer versions in the order their details appear (input side first).
    versions = [inner_version, *outer_versions[::-1]]
    first = True
    for kind, version in zip(_LAYER_KINDS, versions, strict=True):
        if kind == "con":
            conv = _read_conv(r)
        elif kind == "affine":
            conv["scale"], conv["shift"] = _read_affine(r)
        else:
            _read_relu(r)
            layers.append(ConvSpec(**conv, relu=True))
            conv = None
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output/gradient disabled
            r.bool_()
        r.tensor(), r.tensor()  # x_grad, cached_output
        if version >= 2:
            r.tensor()  # params_grad (grad_final for the input add_layer)
        if first and version == 3:
            r.uint()  # sample expansion factor of the input add_layer
        first = False
    layers.append(ConvSpec(**conv, scale=None, shift=None, relu=False))
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes left over after the network")
    for prev, nxt in itertools.pairwise(layers):
        if prev.weight.shape[0] != nxt.weight.shape[1]:
            raise r.fail("conv layer channel counts do not chain")
    if layers[0].weight.shape[1] != 3 or layers[-1].weight.shape[0] != 1:
        raise r.fail("the network does not map RGB to one score map")
    arrays = [a for c in layers for a in (c.weight, c.bias, c.scale, c.shift) if a is not None]
    if not all(np.isfinite(a).all() for a in arrays) or not np.isfinite(means).all():
        raise r.fail("non-finite parameters (inf/nan) in the network")
    width, height, _ = windows[0]
    return MMODWeights(
        window=(width, height),
        nms_iou=nms_iou,
        nms_covered=nms_covered,
        means=means,
        padding=padding,
        outer_padding=outer_padding,
        layers=tuple(layers),
    )


# ---------------------------------------------------------------------------------------------------------------
# 2. dlib's bilinear resize_image, bit for bit
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ResizePlan:
    """Sample positions and weights of dlib's ``resize_image(in, out, interpolate_bilinear())`` from an h x w
    image to H x W. They depend only on the four sizes, so one plan serves every frame of a video.

    dlib's arithmetic, copied here: row positions y accumulate in double (y += y_scale per row); columns are done
    four at a time with SSE, the four x positions accumulating in float32 (x += 4*x_scale per step), the left
    index truncated, and stop as soon as the fourth lane's right neighbour falls outside the image; the
    remaining columns go through a scalar loop with x accumulating in double again."""

    top: np.ndarray  # int64 [H]
    bottom: np.ndarray  # int64 [H]
    tb: np.ndarray  # float64 [H] vertical fraction
    tb32: np.ndarray  # float32 [H] the SSE lanes' copy of tb
    itb32: np.ndarray  # float32 [H] float32(1 - tb)
    left: np.ndarray  # int64 [Ws] SSE columns 0..Ws-1
    lr32: np.ndarray  # float32 [Ws]
    ilr32: np.ndarray  # float32 [Ws] float32 1 - lr32
    left_s: np.ndarray  # int64 [W - Ws] scalar columns
    right_s: np.ndarray  # int64 [W - Ws]
    lr_s: np.ndarray  # float64 [W - Ws] (x - left) in double


@functools.lru_cache(maxsize=512)
def _resize_plan(h: int, w: int, out_h: int, out_w: int) -> _ResizePlan:
    y_scale = (h - 1) / max(out_h - 1, 1)
    x_scale = (w - 1) / max(out_w - 1, 1)
    ys = np.empty(out_h, np.float64)
    y = -y_scale
    for r in range(out_h):  # sequential double accumulation (not r * y_scale)
        y += y_scale
        ys[r] = y
    top = np.floor(ys).astype(np.int64)
    tb = ys - top
    bottom = np.minimum(top + 1, h - 1)

    x = -4 * x_scale
    lanes = np.array([x, x + x_scale, x + 2 * x_scale, x + 3 * x_scale], np.float64).astype(np.float32)
    step = np.float32(4 * x_scale)
    lefts, lrs = [], []
    c = 0
    while True:
        lanes = lanes + step  # float32 lanes
        left = lanes.astype(np.int32)  # cvttps: truncation
        if left[3] + 1 >= w:
            break
        lefts.append(left)
        lrs.append(lanes - left.astype(np.float32))
        c += 4
    left = np.concatenate(lefts).astype(np.int64) if lefts else np.zeros(0, np.int64)
    lr32 = np.concatenate(lrs) if lrs else np.zeros(0, np.float32)
    xs = np.empty(out_w - c, np.float64)
    x = -x_scale + c * x_scale
    for i in range(out_w - c):
        x += x_scale
        xs[i] = x
    left_s = np.floor(xs).astype(np.int64)
    return _ResizePlan(
        top=top,
        bottom=bottom,
        tb=tb,
        tb32=tb.astype(np.float32),
        itb32=(1 - tb).astype(np.float32),
        left=left,
        lr32=lr32,
        ilr32=np.float32(1) - lr32,
        left_s=left_s,
        right_s=np.minimum(left_s + 1, w - 1),
        lr_s=xs - left_s,
    )


def _bilinear(src: torch.Tensor, out_h: int, out_w: int, rgb8: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """dlib's bilinear ``resize_image`` of float32 planes ``src`` [..., h, w] to [..., out_h, out_w] (written into
    ``out`` when given, e.g. a view of the pyramid tensor).

    ``rgb8=False``: the float image path (what dlib uses inside the input tensor's pyramid).
    ``rgb8=True``: the RGB uint8 path (``pyramid_up``): ``src`` holds uint8 values as float32 and the result is
    truncated to integers the way dlib converts to unsigned char (no rounding).

    Every operation is a separate float32 (or float64) tensor op in dlib's order (products and sums commute
    exactly, so operand order inside one op does not matter), so on any device the result is rounded exactly as
    dlib's SSE code rounds it: torch never fuses eager multiplies and adds into FMAs.

    A dozen ops per call (it runs for every pyramid level of every frame): the top and bottom source rows come in
    one index_select and each column block's left and right neighbours in one gather, so the four corner terms are
    the quadrants of one [2H, 2W] tensor (elementwise ops, so the layout changes no rounding). Few ops matter
    beside other Python threads: each op hands the GIL back and waits to retake it."""
    h, w = src.shape[-2:]
    p = _device_plan(h, w, out_h, out_w, src.device)
    if out is None:
        out = torch.empty((*src.shape[:-2], out_h, out_w), dtype=torch.float32, device=src.device)
    height = p["top"].numel()
    rows = src.index_select(-2, p["rows_tb"])  # [..., 2H, w]: top rows, then bottom rows
    n_simd = p["left"].numel()
    if n_simd:
        # [..., 2H, 2Ws]: (top|bottom) x (left|right) corners times their float32 weights (dlib's SSE lanes).
        terms = torch.gather(rows, -1, p["cols_simd"].expand(*rows.shape[:-1], 2 * n_simd)).mul_(p["w_simd"])
        acc = out[..., :n_simd]
        torch.add(terms[..., :height, :n_simd], terms[..., :height, n_simd:], out=acc)  # tl + tr
        acc.add_(terms[..., height:, :n_simd]).add_(terms[..., height:, n_simd:])  # + bl, + br
        if rgb8:
            acc.trunc_()
    tail = p["left_s"].numel()
    if tail:  # the scalar columns
        corners = torch.gather(rows, -1, p["cols_tail"].expand(*rows.shape[:-1], 2 * tail))  # [..., 2H, 2T]
        if rgb8:  # everything in double, then truncated
            terms = corners.double().mul_(p["w_tail64"])
            blend = (terms[..., :tail] + terms[..., tail:]).mul_(p["w_vertical"])  # [..., 2H, T]
            out[..., n_simd:] = blend[..., :height, :].add_(blend[..., height:, :]).trunc_()
        else:  # the horizontal blend in float32, the vertical one in double
            terms = corners.mul_(p["w_tail"])
            blend = (terms[..., :tail] + terms[..., tail:]).double().mul_(p["w_vertical"])
            out[..., n_simd:] = blend[..., :height, :].add_(blend[..., height:, :])  # rounded to float32 here
    return out


@functools.lru_cache(maxsize=128)
def _device_plan(h: int, w: int, out_h: int, out_w: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A resize plan's tables as tensors on ``device`` (kept, so a GPU does not get them copied for every frame)."""
    plan = _resize_plan(h, w, out_h, out_w)
    tables = {
        "top": plan.top, "rows_tb": np.concatenate([plan.top, plan.bottom]), "left": plan.left,
        "cols_simd": np.concatenate([plan.left, plan.left + 1]), "left_s": plan.left_s,
        "cols_tail": np.concatenate([plan.left_s, plan.right_s]),
        "w_tail64": np.concatenate([1 - plan.lr_s, plan.lr_s]),  # double (1 - lr, lr): the RGB path
        "w_vertical": np.concatenate([1 - plan.tb, plan.tb])[:, None],  # double [2H, 1]
    }  # fmt: skip
    tensors = {name: torch.as_tensor(array, device=device) for name, array in tables.items()}
    # float32 (1 - lr, lr) of the scalar columns (the float path) and the SIMD columns' corner weights, float32
    # products of the row and column fractions by quadrant (top|bottom) x (left|right), as dlib's lanes compute
    # them: computed once here instead of for every frame and level.
    lr_s32 = torch.as_tensor(plan.lr_s.astype(np.float32), device=device)
    tensors["w_tail"] = torch.cat([1 - lr_s32, lr_s32])
    tb32, itb32, lr32, ilr32 = (torch.as_tensor(a, device=device) for a in (plan.tb32[:, None], plan.itb32[:, None],
                                                                             plan.lr32, plan.ilr32))
    tensors["w_simd"] = torch.cat([torch.cat([itb32 * ilr32, itb32 * lr32], dim=1),
                                   torch.cat([tb32 * ilr32, tb32 * lr32], dim=1)])
    return tensors


def pyramid_up_size(h: int, w: int) -> tuple[int, int]:
    """dlib's ``pyramid_up`` (with pyramid_down<2>) output size: the input rectangle mapped up by p*2 + (2.5, 1.5)
    and rounded, i.e. 2h+1 rows and 2w+2 columns."""
    return 2 * h + 1, 2 * w + 2


# ---------------------------------------------------------------------------------------------------------------
# 3. The tiled image pyramid inside the input tensor
# ---------------------------------------------------------------------------------------------------------------

Rect = tuple[int, int, int, int]  # dlib rectangle (left, top, right, bottom), inclusive
_PYRAMID_N = 6  # pyramid_down<6>: each level is 5/6 of the previous one
_U64 = 1 << 64


def _level_size(nr: int, nc: int) -> tuple[int, int]:
    rate = (_PYRAMID_N - 1.0) / _PYRAMID_N
    return math.floor(rate * nr), math.floor(rate * nc)


def _intersects(a: Rect, b: Rect) -> bool:
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


@functools.lru_cache(maxsize=256)
def _pyramid_layout(nr: int, nc: int, padding: int, outer: int) -> tuple[tuple[Rect, ...], int, int]:
    """Where dlib's input layer puts each pyramid level (``compute_tiled_image_pyramid_details``): the full image
    at the top left, smaller levels below it in a first column, the rest climbing back up along the right edge.
    Returns the level rectangles (inside the tensor) and the tensor's rows and columns."""
    if nr * nc == 0:
        return (), 0, 0
    sizes = [(nr, nc)]
    r, c = nr, nc
    while True:
        r, c = _level_size(r, c)
        if r * c == 0 or r < 5:
            break
        sizes.append((r, c))
    width0, height0 = sizes[0][1], sizes[0][0]
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height = prev_width = 0
    for h, w in sizes:
        # dlib mixes its unsigned rectangle sizes into these differences, so both comparisons are between
        # unsigned 64-bit numbers (negative differences wrap around); tiny images depend on that.
        fits_beside = w <= (width0 - prev_width - padding) % _U64
        past_half = (height - height0) * 2 % _U64 >= (total_height - height0) % _U64
        if fits_beside and past_half:
            break
        height += h + padding
        prev_width = w
    height -= padding
    # Like dlib, start from every level at the origin and move them into place one by one; levels that would
    # overlap the full-size image are dropped.
    rects: list[Rect] = [(0, 0, w - 1, h - 1) for h, w in sizes]
    y = outer
    i = 0
    while y < height + outer and i < len(rects):
        x0, y0, x1, y1 = rects[i]
        rects[i] = (x0 + outer, y0 + y, x1 + outer, y1 + y)
        y += y1 - y0 + 1 + padding
        i += 1
    y -= padding
    while i < len(rects):
        right, bottom = outer + width0 - 1, y - 1
        rect = (right - rects[i][2], bottom - rects[i][3], right, bottom)
        if _intersects(rects[0], rect):
            break
        rects[i] = rect
        y -= rect[3] - rect[1] + 1 + padding
        i += 1
    return tuple(rects[:i]), height + 2 * outer, width0 + 2 * outer


# ---------------------------------------------------------------------------------------------------------------
# 4. The detector
# ---------------------------------------------------------------------------------------------------------------


def _lround(x: np.ndarray) -> np.ndarray:
    """C's lround (halves away from zero), exact for every double (floor(|x| + 0.5) is not, near 0.5 - ulp)."""
    ax = np.abs(x)
    whole = np.floor(ax)
    return (np.sign(x) * (whole + (ax - whole >= 0.5))).astype(np.int64)


def _overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap`` as the face detector's NMS uses it: the intersection area divided by the area of
    the box enclosing both (not by the union), or by either box's own area; areas count inclusive pixels."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return False
    inner = float(iw * ih)
    outer = float((max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1))
    area_a = float((a[2] - a[0] + 1) * (a[3] - a[1] + 1))
    area_b = float((b[2] - b[0] + 1) * (b[3] - b[1] + 1))
    return inner / outer > iou or inner / area_a > covered or inner / area_b > covered


_tf32_lock = threading.Lock()
_tf32_users = 0
_tf32_saved: tuple | None = None


def _tf32_switches() -> list[tuple[object, str, object]]:
    """(namespace, attribute, full-precision value) of the switches that let CUDA convs/matmuls use TF32. torch
    >= 2.9 has per-backend ``fp32_precision`` settings; mixing them with the legacy ``allow_tf32`` flags makes
    torch raise when the legacy flags are read, so the new ones are used wherever they exist."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return [(conv, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    return [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]


@contextlib.contextmanager
def _no_tf32(device: torch.device):
    """Turn TF32 off for CUDA convolutions/matmuls while any detector forward runs: with TF32 the scores move by
    ~1e-3 and boxes change. The switches are process-wide, so concurrent detector calls are counted and the
    previous settings come back when the last one ends (another model's CUDA work in those milliseconds simply
    runs in full float32)."""
    global _tf32_users, _tf32_saved
    if device.type != "cuda":
        yield
        return
    switches = _tf32_switches()
    with _tf32_lock:
        if _tf32_users == 0:
            _tf32_saved = tuple(getattr(ns, name) for ns, name, _ in switches)
            for ns, name, value in switches:
                setattr(ns, name, value)
        _tf32_users += 1
    try:
        yield
    finally:
        with _tf32_lock:
            _tf32_users -= 1
            if _tf32_users == 0 and _tf32_saved is not None:
                for (ns, name, _), value in zip(switches, _tf32_saved, strict=True):
                    setattr(ns, name, value)


def _as_rgb(image: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InvalidArgumentError(
            f"image {index}: face detection needs uint8 numpy arrays, got "
            f"{type(image).__name__}{'' if not isinstance(image, np.ndarray) else ' of ' + str(image.dtype)}"
        )
    if image.ndim == 2:  # grayscale: dlib copies the grey level into R, G and B
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidArgumentError(f"image {index}: expected an HxWx3 RGB (or HxW grey) image, got shape {image.shape}")
    return image


class MMODFaceDetector:
    """dlib's CNN face detector in torch: ``detect(images, upsample)`` gives exactly the boxes and confidences
    ``dlib.cnn_face_detection_model_v1(path)(image, upsample)`` gives (on CPU dlib), many images per forward pass.

    Thread-safe: the object holds only read-only weights; each call builds its own tensors. Use
    :func:`get_mmod_detector` to share one instance per device in a process.

    Images dlib cannot process get no detections (see docs/MMOD.md, "Tiny images"): narrower than 10 columns
    after upsampling (dlib's tile layout then falls outside its tensor; it raises or corrupts memory) or with a
    tiled tensor too small for the three stride-2 convs (fewer than ~7 rows; dlib raises). No face can be found
    there (the detection window is 80x80 at the finest level), and one such frame must not fail a batch.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        weights: str | Path | None = None,
        max_batch_elements: int | None = None,
    ):
        if weights is None:
            weights = cnn_model_path()
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidArgumentError("device='cuda' was asked for the face detector, but CUDA is not available")
        self.spec = read_mmod_file(Path(weights))
        # Pyramid tensor pixels (rows x cols x frames) per forward pass. On CUDA it bounds peak memory: 3 floats per
        # pixel in, 4 out of the first conv, so 96M pixels peak at ~2.7 GB (~43 frames of 512x288 upsampled once,
        # a 2129x1048 tensor each).
        # On the CPU bigger batches only thrash the caches (measured: one such frame per pass is fastest), so
        # the CPU batches only small images together (1M: one 512x288 frame at upsample 0, ten 176x144 ones).
        self.max_batch_elements = max_batch_elements or (96_000_000 if self.device.type == "cuda" else 1_000_000)
        # On the CPU, oneDNN's convolutions run ~1.5x faster on channels-last tensors (measured on this network);
        # on CUDA the plain layout is kept.
        self._memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self._layers = [
            (
                torch.as_tensor(c.weight, device=self.device).contiguous(memory_format=self._memory_format),
                torch.as_tensor(c.bias, device=self.device),
                None if c.scale is None else torch.as_tensor(c.scale, device=self.device)[:, None, None],
                None if c.shift is None else torch.as_tensor(c.shift, device=self.device)[:, None, None],
                c.stride,
                c.padding,
                c.relu,
            )
            for c in self.spec.layers
        ]
        self._means = torch.as_tensor(self.spec.means, device=self.device)[:, None, None]
        # The final conv's weights as a [k*k, 45] matrix (tap-major) for _last_conv_cpu.
        last = self.spec.layers[-1]
        self._last_k = last.weight.shape[-1]
        self._last_taps = torch.as_tensor(
            np.ascontiguousarray(last.weight[0].transpose(1, 2, 0).reshape(-1, last.weight.shape[1])),
            device=self.device)
        self._last_bias = float(last.bias[0])
        self._last_as_taps = (self.device.type == "cpu" and last.weight.shape[0] == 1 and last.stride == 1
                              and last.padding == self._last_k // 2 and last.scale is None and not last.relu)
        if self.device.type == "cpu":
            keep_freed_memory()  # every frame allocates and frees tens of MB: reuse them instead of page-faulting

    # -- geometry -------------------------------------------------------------------------------------------
    def _usable(self, rects: tuple[Rect, ...], nr: int, nc: int) -> bool:
        """Whether dlib can run an image with this pyramid layout: every tile inside the nr x nc tensor (for
        images narrower than 10 columns dlib's layout puts tiles outside it and dlib fails or corrupts memory)
        and a tensor big enough to give a score map of at least one cell (dlib raises otherwise)."""
        if not rects or any(x0 < 0 or y0 < 0 or x1 >= nc or y1 >= nr for x0, y0, x1, y1 in rects):
            return False
        for c in self.spec.layers:
            k = c.weight.shape[-1]
            nr = (nr + 2 * c.padding - k) // c.stride + 1
            nc = (nc + 2 * c.padding - k) // c.stride + 1
            if nr < 1 or nc < 1:
                return False
        return True

    def _output_to_input(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map score-map cells to tensor points through every conv: p*stride - padding + k//2."""
        y, x = r.astype(np.float64), c.astype(np.float64)
        for spec in reversed(self.spec.layers):
            k = spec.weight.shape[-1]
            y = y * spec.stride - spec.padding + k // 2
            x = x * spec.stride - spec.padding + k // 2
        return x, y

    # -- tensors --------------------------------------------------------------------------------------------
    def _input_tensor(self, frames: torch.Tensor, rects: tuple[Rect, ...], nr: int, nc: int) -> torch.Tensor:
        """[n, 3, h, w] float32 RGB values 0..255 -> [n, 3, nr, nc] dlib input tensor: (v - mean) / 256 at the first
        tile, each further level resized from the previous one, zeros elsewhere."""
        n = frames.shape[0]
        data = torch.zeros((n, 3, nr, nc), dtype=torch.float32, device=self.device)
        x0, y0, x1, y1 = rects[0]
        data[:, :, y0 : y1 + 1, x0 : x1 + 1] = (frames - self._means) / 256
        for (px0, py0, px1, py1), (x0, y0, x1, y1) in itertools.pairwise(rects):
            previous, level = data[:, :, py0 : py1 + 1, px0 : px1 + 1], data[:, :, y0 : y1 + 1, x0 : x1 + 1]
            _bilinear(previous, y1 - y0 + 1, x1 - x0 + 1, rgb8=False, out=level)
        return data

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """[n, 3, nr, nc] input tensor -> [n, R, C] score map."""
        if self.device.type == "cpu":
            # oneDNN's first conv runs ~25 % faster on a channels-last copy (the copy costs ~1/3 of the saving).
            x = x.contiguous(memory_format=torch.channels_last)
        *hidden, last = self._layers
        for weight, bias, scale, shift, stride, padding, relu in hidden:
            x = F.conv2d(x, weight, bias, stride=stride, padding=padding)
            if scale is not None:  # dlib's affine layer, as its own step (folding it into the conv would round
                x.mul_(scale).add_(shift)  # differently)
            if relu:
                x.relu_()
        if self._last_as_taps:
            return self._last_conv_cpu(x)
        weight, bias, _, _, stride, padding, _ = last
        return F.conv2d(x, weight, bias, stride=stride, padding=padding)[:, 0]

    def _last_conv_cpu(self, x: torch.Tensor) -> torch.Tensor:
        """The final 1 x 45 x 9 x 9 conv on the CPU as one matrix product and one strided sum: oneDNN runs a
        one-output conv at a fraction of its speed (this is ~2.5x faster, in a handful of ops). The sum runs in
        another order than a conv's, which moves scores by ~5e-6 (as any two conv implementations differ; tested
        against dlib).

        x: [n, 45, R, C] (channels-last) -> [n, R, C]."""
        n, channels, rows, cols = x.shape
        k, pad = self._last_k, self._last_k // 2
        pr, pc = rows + 2 * pad, cols + 2 * pad
        plane = pr * pc
        scores = torch.empty((n, rows, cols), dtype=x.dtype, device=x.device)
        # One plane per tap (dy, dx): taps[t, p] = the tap's weights . the 45 channels at padded pixel p. The
        # buffer has one padded row to spare, so the strided view below stays inside it.
        taps = torch.empty(k * k * plane + pc, dtype=x.dtype, device=x.device)
        for i in range(n):
            padded = F.pad(x[i : i + 1], (pad, pad, pad, pad))[0]  # [45, R+8, C+8], channels-last strides
            pixels = padded.permute(1, 2, 0).reshape(plane, channels)  # [(R+8)(C+8), 45], no copy
            torch.mm(self._last_taps, pixels.T, out=taps[: k * k * plane].view(k * k, plane))
            # score[r, c] = bias + sum over (dy, dx) of taps[dy*k + dx, (r + dy)*pc + c + dx]: element [dy, dx, q]
            # of this view is that term for q = r*pc + c (columns c >= C are wrap-around junk, dropped).
            shifted = taps.as_strided((k, k, rows * pc), (k * plane + pc, plane + 1, 1))
            summed = shifted.sum(dim=1).sum(dim=0).view(rows, pc)[:, :cols]  # over dx, then dy (fastest order)
            torch.add(summed, self._last_bias, out=scores[i])
        return scores

    # -- decoding -------------------------------------------------------------------------------------------
    def _decode(self, scores: np.ndarray, rects: tuple[Rect, ...], upsample: int) -> list[Detection]:
        """One score map [R, C] -> dlib's detections in original image pixels."""
        rows, cols = np.nonzero(scores > 0)
        if rows.size == 0:
            return []
        conf = scores[rows, cols].astype(np.float64)
        px, py = self._output_to_input(rows, cols)
        win_w, win_h = self.spec.window
        hw, hh = (win_w - 1) / 2, (win_h - 1) / 2  # dlib's centered_drect
        x0, y0, x1, y1 = px - hw, py - hh, px + hw, py + hh
        # The pyramid level each box belongs to: the tile containing its centre, else the nearest tile.
        cx = np.floor((x0 + x1) / 2 + 0.5)
        cy = np.floor((y0 + y1) / 2 + 0.5)
        tiles = np.array(rects, dtype=np.float64)  # [L, 4]
        nx = np.clip(cx[:, None], tiles[:, 0], tiles[:, 2])
        ny = np.clip(cy[:, None], tiles[:, 1], tiles[:, 3])
        dist = np.sqrt((nx - cx[:, None]) ** 2 + (ny - cy[:, None]) ** 2)  # 0 inside a tile
        level = np.argmin(dist, axis=1)  # first minimum, like dlib's nearest_rect
        x0, x1 = x0 - tiles[level, 0], x1 - tiles[level, 0]
        y0, y1 = y0 - tiles[level, 1], y1 - tiles[level, 1]
        ratio = _PYRAMID_N / (_PYRAMID_N - 1.0)
        for k in range(int(level.max())):
            up = level > k
            x0[up], y0[up] = x0[up] * ratio + 0.3, y0[up] * ratio + 0.3
            x1[up], y1[up] = x1[up] * ratio + 0.3, y1[up] * ratio + 0.3
        boxes = np.stack([_lround(x0), _lround(y0), _lround(x1), _lround(y1)], axis=1)
        order = np.argsort(-conf, kind="stable")  # dlib sorts by confidence (its order among exact ties is unspecified)
        kept: list[tuple[Rect, float]] = []
        for i in order:
            box = tuple(int(v) for v in boxes[i])
            if any(_overlaps(k, box, self.spec.nms_iou, self.spec.nms_covered) for k, _ in kept):
                continue
            kept.append((box, float(conf[i])))
        if upsample:
            arr = np.array([k for k, _ in kept], dtype=np.float64)
            for _ in range(upsample):  # pyramid_down<2>::point_down: p/2 - (1.25, 0.75), per corner
                arr = arr / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])
            arr = _lround(arr)
            kept = [(tuple(int(v) for v in a), s) for a, (_, s) in zip(arr, kept, strict=True)]
        return [(*box, score) for box, score in kept]

    # -- public ---------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def detect(self, images: list[np.ndarray], upsample: int = 1) -> list[list[Detection]]:
        """Faces in each image: ``(left, top, right, bottom, confidence)`` tuples in the image's pixels (right and
        bottom inclusive, may lie outside the image), sorted by confidence, descending.

        ``images``: H x W x 3 uint8 RGB arrays (H x W grey also accepted), sizes may differ; images of one size
        share forward passes. ``upsample``: how many times to double the image first (finds smaller faces)."""
        if isinstance(images, np.ndarray):
            raise InvalidArgumentError("detect() takes a list of images; wrap a single image as [image]")
        if not isinstance(upsample, (int, np.integer)) or isinstance(upsample, bool) or not 0 <= upsample <= 8:
            raise InvalidArgumentError(f"upsample must be an integer from 0 to 8, got {upsample!r}")
        upsample = int(upsample)
        rgb = [_as_rgb(im, i) for i, im in enumerate(images)]
        results: list[list[Detection]] = [[] for _ in rgb]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(rgb):
            groups.setdefault(im.shape[:2], []).append(i)
        threads = foreground_cpu_threads() if self.device.type == "cpu" else contextlib.nullcontext()
        with _no_tf32(self.device), threads:
            for (h, w), members in groups.items():
                if h == 0 or w == 0:  # dlib's pyramid_up keeps an empty image empty
                    continue
                for _ in range(upsample):
                    h, w = pyramid_up_size(h, w)
                rects, nr, nc = _pyramid_layout(h, w, self.spec.padding, self.spec.outer_padding)
                if not self._usable(rects, nr, nc):
                    continue
                chunk = max(1, self.max_batch_elements // (nr * nc))
                for start in range(0, len(members), chunk):
                    idx = members[start : start + chunk]
                    batch = np.stack([rgb[i] for i in idx])  # [n, H, W, 3] uint8
                    frames = torch.as_tensor(batch, device=self.device).permute(0, 3, 1, 2).float()
                    for _ in range(upsample):
                        fh, fw = frames.shape[-2:]
                        frames = _bilinear(frames, *pyramid_up_size(fh, fw), rgb8=True)
                    scores = self._scores(self._input_tensor(frames, rects, nr, nc)).float().cpu().numpy()
                    for i, score_map in zip(idx, scores, strict=True):
                        results[i] = self._decode(score_map, rects, upsample)
        return results


_detectors_lock = threading.Lock()


@functools.cache
def _cached_detector(device: torch.device, weights: str) -> MMODFaceDetector:
    return MMODFaceDetector(device, weights)


def get_mmod_detector(device: str | torch.device = "cpu", weights: str | Path | None = None) -> MMODFaceDetector:
    """One shared detector per (device, weights file) in this process (loading parses the file and copies the
    weights to the device). ``weights=None`` is face-recognition-models' file, the same instance as naming it."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else device
    if weights is None:
        weights = cnn_model_path()
    with _detectors_lock:  # functools.cache alone could build the same detector twice in two threads
        return _cached_detector(device, str(Path(weights).resolve()))
