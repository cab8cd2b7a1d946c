"""Procedural, deterministic chest-radiograph phantoms for the phantom8 benchmark.

Images are frontal (PA) views: the patient's right hemithorax is on the image left. Each class
carries one coarse sign, large enough to be seen at 112 px. Geometry is drawn analytically with
numpy in normalised thorax coordinates (u: -1 image left .. 1 image right, v: -1 top .. 1 bottom),
so all random draws except the pixel noise are independent of the output size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.core.rng import derive_seed
from harness.data.labels import PHANTOM8_CLASSES
from harness.data.phantom_text import phantom_report
from harness.data.sample import Sample

TRAIN_COUNTS: dict[str, int] = {
    "Normal": 134,
    "Inflammatory_Pneumonia": 106,
    "Higher_Density": 68,
    "Lower_Density": 63,
    "Obstructive": 64,
    "Degenerative_Infectious": 59,
    "Mediastinal_Changes": 60,
    "Chest_Changes": 54,
}
_MIN_BASE = 128
_SIDE_NAME = {-1: "right", 1: "left"}  # image-x sign of a hemithorax -> the patient's side


@dataclass(frozen=True)
class Phantom:
    image: Image.Image
    label: str
    findings: dict[str, object]
    report: str


def _ell(u, v, cx, cy, ax, ay, eps):
    """Soft-edged filled ellipse (1 inside, 0 outside)."""
    e = np.sqrt(((u - cx) / ax) ** 2 + ((v - cy) / ay) ** 2)
    return np.clip((1.0 - e) * min(ax, ay) / eps + 0.5, 0.0, 1.0)


def _step(d, eps):
    """Soft Heaviside of a signed distance."""
    return np.clip(d / eps + 0.5, 0.0, 1.0)


def _vessels(rng: np.random.Generator) -> list[tuple[float, ...]]:
    """Branching vascular markings radiating from both hila: (u1, v1, u2, v2, value)."""
    angs, lns = rng.uniform(-1.2, 1.3, (2, 9)), rng.uniform(0.25, 0.5, (2, 9)) / 3
    jit = angs[..., None] + 0.25 * np.arange(3) * rng.uniform(-1, 1, (2, 9, 3))
    out = []
    for i, s in enumerate((-1, 1)):
        for ang, ln in zip(jit[i].tolist(), lns[i].tolist(), strict=True):
            a, b = s * 0.16, -0.02
            for j, val in enumerate((150, 95, 60)):
                a2, b2 = a + s * ln * math.cos(ang[j]), b + ln * math.sin(ang[j])
                out.append((a, b, a2, b2, val))
                a, b = a2, b2
    return out


def _base_geometry(rng: np.random.Generator) -> dict:
    sc = rng.uniform(0.93, 1.05)
    sides = {
        s: {"cx": s * 0.4 * sc, "cy": -0.08, "ax": 0.33 * sc, "ay": 0.72 * sc, "k": 0.8,
            "dome": 0.43 + 0.04 * (s > 0) + rng.uniform(-0.03, 0.03), "rib": 0.135}
        for s in (-1, 1)
    }  # fmt: skip
    return {
        "scale": sc, "dx": rng.uniform(-0.06, 0.06), "dy": rng.uniform(-0.04, 0.04),
        "rot": rng.uniform(-4.0, 4.0), "expo": rng.uniform(-1.0, 1.0),
        "contrast": rng.uniform(0.85, 1.15), "noise": rng.uniform(0.01, 0.028),
        "depth": 0.3, "markings": 1.0, "sides": sides, "med_x": 0.0, "med_w": 0.1,
        "heart": [0.1, 0.3, 0.31 * rng.uniform(0.92, 1.08), 0.22],
        "vessels": _vessels(rng),
        "tex": rng.random((2, 20, 20)),
    }  # fmt: skip


def _apply_sign(label: str, rng: np.random.Generator, g: dict) -> dict:
    """Mutate the geometry for the label's sign; return the sign's findings."""
    s = int(rng.choice([-1, 1]))
    sev = float(rng.uniform(0.35, 1.0))
    f: dict = {"side": _SIDE_NAME[s], "severity": round(sev, 2)}
    p = g["sides"][s]
    if label == "Normal":
        return {"side": None, "severity": 0.0, "sign": "none"}
    if label == "Inflammatory_Pneumonia":
        zone = ["lower", "mid and lower", "mid"][int(rng.integers(3))]
        lo, hi = {"lower": (0.08, 0.35), "mid and lower": (-0.12, 0.32), "mid": (-0.25, 0.08)}[zone]
        nb = int(rng.integers(5, 9))
        g["blobs"] = np.stack([p["cx"] + rng.uniform(-0.14, 0.14, nb), rng.uniform(lo, hi, nb),
                               rng.uniform(0.09, 0.14, nb) * (0.8 + 0.4 * sev)], 1)  # fmt: skip
        f.update(sign="consolidation", zone=zone)
    elif label == "Higher_Density":
        bottom = p["dome"]
        g["effusion_level"] = bottom - (0.38 + 0.35 * sev) * (bottom - (p["cy"] - p["ay"]))
        f.update(sign="effusion", zone="lower", size="large" if sev > 0.65 else "moderate")
    elif label == "Lower_Density":
        g["ptx_collapse"] = 0.64 - 0.24 * sev
        f.update(sign="pneumothorax", zone="apical and lateral",
                 size="large" if sev > 0.6 else "moderate")  # fmt: skip
    elif label == "Obstructive":
        for q in g["sides"].values():
            q.update(ay=q["ay"] * 1.12, ax=q["ax"] * 1.06, cy=0.0, k=0.1,
                     dome=0.63 + 0.07 * sev, rib=0.125)  # fmt: skip
            q["cx"] *= 1.04
        g.update(depth=0.38, markings=0.45, heart=[0.03, 0.43, 0.16 + 0.03 * (1 - sev), 0.25])
        g["med_w"] = 0.085
        f.update(side="bilateral", sign="hyperinflation", zone="all")
    elif label == "Degenerative_Infectious":
        spots, lines = [], []
        for q in g["sides"].values():
            du, dv = rng.uniform(-0.85, 0.85, (2, 200))
            cand = np.c_[q["cx"] + du * q["ax"], q["cy"] + q["ay"] * (dv * 0.33 - 0.6)]
            cand = cand[du**2 + (dv * 0.33 - 0.6) ** 2 < 0.8]
            k = 34 + int(36 * sev)
            spots.append(np.c_[cand[:k], rng.uniform(0.016, 0.026, len(cand[:k]))])
            a = cand[k : k + 12]
            ang, ln = rng.uniform(0, math.pi, len(a)), rng.uniform(0.08, 0.16, len(a))
            end = a + ln[:, None] * np.c_[np.cos(ang), np.sin(ang)]
            lines.append(np.c_[a, end, np.full(len(a), 220)])
        g["spots"], g["lines"] = np.concatenate(spots), np.concatenate(lines)
        f.update(side="bilateral", sign="reticulonodular", zone="upper")
    elif label == "Mediastinal_Changes":
        variant = ["cardiomegaly", "mediastinal widening", "both"][int(rng.integers(3))]
        if variant != "mediastinal widening":
            g["heart"] = [0.1, 0.3, 0.45 + 0.1 * sev, 0.25 + 0.03 * sev]
        if variant != "cardiomegaly":
            g["med_w"] = 0.2 + 0.08 * sev
        f.update(side=None, sign=variant, zone="central")
    elif label == "Chest_Changes":
        lateral = p["cx"] + s * p["ax"]
        p.update(ax=p["ax"] * (0.74 - 0.16 * sev), dome=p["dome"] - 0.17 - 0.13 * sev,
                 cy=p["cy"] + 0.05, rib=0.112)  # fmt: skip
        p["cx"] = lateral - s * p["ax"] - s * 0.02
        other = g["sides"][-s]
        other.update(ax=other["ax"] * 1.08, cx=other["cx"] + s * 0.05)
        shift = s * (0.09 + 0.09 * sev)
        g["heart"][0] += shift
        g["med_x"] = shift
        f.update(sign="volume loss", zone="whole hemithorax")
    g["sign_side"] = s
    return f


def _layer(n: int, g: dict, spots, lines, width: float) -> np.ndarray:
    """Draw spots (u, v, r) and lines (u1, v1, u2, v2, value) in thorax coordinates."""
    c, sn = math.cos(math.radians(g["rot"])), math.sin(math.radians(g["rot"]))

    def px(pu, pv):
        return ((c * pu - sn * pv + g["dx"] + 1) * n / 2 - 0.5,
                (sn * pu + c * pv + g["dy"] + 1) * n / 2 - 0.5)  # fmt: skip

    layer = Image.new("L", (n, n))
    dr = ImageDraw.Draw(layer)
    for pu, pv, r in spots:
        (cx, cy), rr = px(pu, pv), r * n / 2
        dr.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=255)
    for a, b, a2, b2, val in lines:
        dr.line([px(a, b), px(a2, b2)], fill=int(val), width=max(1, round(width * n / 110)))
    layer = layer.filter(ImageFilter.GaussianBlur(0.6 * n / _MIN_BASE))
    return np.asarray(layer, dtype=np.float32) / 255


def _draw(label: str, g: dict, n: int) -> np.ndarray:
    x = ((np.arange(n) + 0.5) / n * 2.0 - 1.0).astype(np.float32)
    xx, yy = np.meshgrid(x, x)
    c, sn = math.cos(math.radians(g["rot"])), math.sin(math.radians(g["rot"]))
    u = c * (xx - g["dx"]) + sn * (yy - g["dy"])
    v = -sn * (xx - g["dx"]) + c * (yy - g["dy"])
    eps = 3.0 / n
    tex = [np.asarray(Image.fromarray(t.astype(np.float32)).resize((n, n), Image.BILINEAR))
           for t in g["tex"]]  # fmt: skip
    t = np.abs(u)
    wall = 0.84 - 0.22 * np.clip(-0.35 - v, 0, 1) ** 2
    body = _step(wall - t, eps) * _step(v + 0.86 - 0.3 * u * u, eps)
    body = np.maximum(body, _step(0.2 - t, eps))
    img = 0.03 + body * (0.4 + 0.14 * np.clip(1 - (u / 0.84) ** 2, 0, 1))
    sides, s_sign = g["sides"], g.get("sign_side", 0)
    dome = {s: q["dome"] + q["k"] * (u - q["cx"]) ** 2 for s, q in sides.items()}
    dome_all = np.where(u < 0, dome[-1], dome[1])
    img += 0.09 * body * _step(v - dome_all, eps)
    vessels = _layer(n, g, [], g["vessels"], 1.6)
    lungs = {}
    for s, q in sides.items():
        m = _ell(u, v, q["cx"], q["cy"], q["ax"], q["ay"], 1.6 * eps) * _step(dome[s] - v, eps)
        hil = np.exp(-((u - s * 0.17 - g["med_x"]) ** 2 + (v + 0.02) ** 2) / 0.04)
        depth = g["depth"] * (1 - g["markings"] * (0.2 * tex[0] + 0.35 * vessels) - 0.4 * hil)
        if label == "Lower_Density" and s == s_sign:
            k, hx = g["ptx_collapse"], s * 0.17
            ccx, ccy, cax, cay = hx + (q["cx"] - hx) * k, q["cy"] * k, q["ax"] * k, q["ay"] * k
            mc = _ell(u, v, ccx, ccy, cax, cay, eps)
            e = np.sqrt(((u - ccx) / cax) ** 2 + ((v - ccy) / cay) ** 2)
            ring = np.clip(1 - np.abs(e - 1) * cax / (1.3 * eps), 0, 1)
            img -= m * ((1 - mc) * 0.44 + mc * depth * 1.05) - 0.2 * ring * m
        else:
            img -= m * depth
        lungs[s] = m
    if label == "Inflammatory_Pneumonia":
        op = np.zeros_like(u)
        for bu, bv, bs in g["blobs"]:
            op += np.exp(-((u - bu) ** 2 + (v - bv) ** 2) / (2 * bs * bs))
        op = np.clip(op, 0, 1) * (0.5 + 0.5 * tex[1]) * lungs[s_sign]
        img += (0.26 + 0.12 * g["severity"]) * op
    if label == "Higher_Density":
        q = sides[s_sign]
        men = g["effusion_level"] - 0.5 * np.clip(s_sign * u - 0.12, 0, 0.8) ** 2
        cage = _ell(u, v, q["cx"], q["cy"] + 0.08, q["ax"] * 1.03, q["ay"], eps)
        me = cage * _step(v - men, 2 * eps)
        img = img * (1 - me) + me * (0.6 + 0.03 * tex[1])
    if label == "Degenerative_Infectious":
        layer = _layer(n, g, g["spots"], g["lines"], 1.0)
        img += 0.3 * layer * (lungs[-1] + lungs[1])
    hx, hy, hax, hay = g["heart"]
    mx, mw = g["med_x"], g["med_w"]
    mwv = mw * (0.75 + 0.3 * np.clip((v + 0.9) / 1.2, 0, 1))
    med = body * _step(mwv - np.abs(u - mx), eps) * _step(hy - v, eps) * _step(v + 0.95, eps)
    med = np.maximum(med, _ell(u, v, mx + 0.1, -0.3, 0.075, 0.065, eps))  # aortic knob
    heart = np.maximum(med, _ell(u, v, hx, hy, hax, hay, eps))
    img = img * (1 - heart) + heart * (0.66 + 0.06 * np.clip(1 - np.abs(u - hx) / hax, 0, 1))
    img -= 0.13 * _step(0.032 - np.abs(u - mx), eps) * _step(-0.32 - v, eps) * body  # trachea
    img += 0.06 * _step(0.06 - t, eps) * body  # spine
    sp = np.where(u < 0, sides[-1]["rib"], sides[1]["rib"])
    top = np.where(u < 0, sides[-1]["cy"] - sides[-1]["ay"], sides[1]["cy"] - sides[1]["ay"])
    w = (v - top - 1.3 * (t - 0.28) ** 2 + 0.01) / sp
    k = np.clip(np.round(w), 0, 8)
    ribs = np.clip(1 - np.abs(w - k) * sp / 0.024, 0, 1)
    lim = _step(t - 0.05, eps) * _step(wall - 0.03 - t, eps) * _step(dome_all + 0.12 - v, 4 * eps)
    img += 0.11 * ribs * body * lim
    clav = _step(0.022 - np.abs(v + 0.66 + 0.16 * t - 0.25 * t * t), eps)
    img += 0.16 * clav * _step(t - 0.06, eps) * _step(0.56 - t, eps)
    img = (img - 0.45) * g["contrast"] + 0.45 + 0.08 * g["expo"]
    return np.clip(img, 0, 1)


def render_phantom(label: str, seed: int, size: int = 112) -> Phantom:
    """Render one phantom; deterministic in (label, seed, size)."""
    if label not in PHANTOM8_CLASSES:
        raise ValueError(f"unknown phantom label {label!r}; expected one of {PHANTOM8_CLASSES}")
    if size < 16:
        raise ValueError(f"phantom size must be at least 16 px, got {size}")
    rng = np.random.default_rng(derive_seed("phantom", label, seed))
    g = _base_geometry(rng)
    f = _apply_sign(label, rng, g)
    g["severity"] = float(f["severity"])
    n = max(size, _MIN_BASE)
    arr = _draw(label, g, n)
    im = Image.fromarray((arr * 255 + 0.5).astype(np.uint8))
    im = im.filter(ImageFilter.GaussianBlur(0.6 * n / _MIN_BASE))
    if n != size:
        im = im.resize((size, size), Image.BILINEAR)
    noise = np.random.default_rng(derive_seed("noise", label, seed, size))
    px = np.asarray(im, dtype=np.float32) + noise.normal(0, g["noise"] * 255, (size, size))
    image = Image.fromarray(np.clip(px + 0.5, 0, 255).astype(np.uint8))
    expo = "underexposed" if g["expo"] > 0.45 else "overexposed" if g["expo"] < -0.45 else None
    pos = "centred" if abs(g["dx"]) < 0.03 else f"shifted {'left' if g['dx'] < 0 else 'right'}"
    q = g["sides"]
    area = (q[-1]["ax"] * q[-1]["ay"] + q[1]["ax"] * q[1]["ay"]) / 2
    dome_desc = "low and flat" if label == "Obstructive" else "smoothly curved at a usual level"
    if f.get("sign") == "volume loss":
        dome_desc = f"asymmetric, with the {f['side']} dome raised"
    findings = {
        **f,
        "exposure": expo or "adequate",
        "rotation_deg": round(float(g["rot"]), 1),
        "position": pos,
        "lung_size": "large" if area > 0.265 else "small" if area < 0.21 else "average-sized",
        "ctr_pct": round(100 * max(g["heart"][2], g["med_w"]) / 0.87),
        "diaphragm": dome_desc,
    }
    return Phantom(
        image=image, label=label, findings=findings, report=phantom_report(label, findings)
    )


def phantom8_split(
    seed: int,
    n_train_per_class: dict[str, int] | None,
    n_test_per_class: int,
    n_val_per_class: int,
    size: int = 112,
) -> dict[str, list[Sample]]:
    """Train (imbalanced, TRAIN_COUNTS by default), val and test (balanced) phantom splits."""
    counts = {
        "train": dict(TRAIN_COUNTS if n_train_per_class is None else n_train_per_class),
        "val": dict.fromkeys(PHANTOM8_CLASSES, n_val_per_class),
        "test": dict.fromkeys(PHANTOM8_CLASSES, n_test_per_class),
    }
    out: dict[str, list[Sample]] = {}
    for split, per_class in counts.items():
        unknown = sorted(set(per_class) - set(PHANTOM8_CLASSES))
        if unknown:
            raise ValueError(f"unknown phantom label(s) in {split} counts: {unknown}")
        samples = []
        for label in PHANTOM8_CLASSES:
            for i in range(per_class.get(label, 0)):
                sid = f"{split}-{label}-{i:04d}"
                ph = render_phantom(label, derive_seed(seed, split, label, i), size)
                samples.append(Sample(id=sid, label=label, image=ph.image, report=ph.report,
                                      group=sid))  # fmt: skip
        out[split] = samples
    return out
