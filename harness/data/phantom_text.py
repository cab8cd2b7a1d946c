"""The texts of a procedural phantom: its reference report, and class-free descriptions of its
image quality and drawn anatomy (the tiny model's pre-training captions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def phantom_report(label: str, f: Mapping[str, Any]) -> str:
    """The reference report of one phantom, from its class and drawn findings."""
    expo = {"adequate": "with adequate exposure", "underexposed": "which is underexposed",
            "overexposed": "which is overexposed"}[f["exposure"]]  # fmt: skip
    rot = abs(float(f["rotation_deg"]))
    rot_s = "no significant rotation" if rot < 1.5 else ("slight" if rot < 3 else "mild")
    rot_s = rot_s if rot < 1.5 else f"{rot_s} rotation"
    pos = "centred" if f["position"] == "centred" else f"{f['position']} on the film"
    side, sev = f.get("side"), float(f.get("severity") or 0.0)
    sentences = [f"Frontal chest radiograph {expo}, with the patient {pos} and {rot_s}."]
    heart = "The heart size and mediastinal contours are within normal limits."
    impression = "no acute cardiopulmonary abnormality"
    if label == "Normal":
        sentences.append("The lungs are clear and well expanded.")
        sentences.append("The hemidiaphragms and costophrenic angles are sharp.")
    elif label == "Inflammatory_Pneumonia":
        kind = "dense lobar" if sev > 0.65 else "patchy airspace"
        sentences.append(f"There is {kind} consolidation in the {side} {f['zone']} zone.")
        impression = f"{side} {f['zone']} zone consolidation"
    elif label == "Higher_Density":
        sentences.append(
            f"There is a {f['size']} {side} pleural effusion with a meniscus and blunting of the "
            f"{side} costophrenic angle."
        )
        impression = f"{f['size']} {side} pleural effusion"
    elif label == "Lower_Density":
        sentences.append(
            f"There is a {f['size']} {side} pneumothorax with a visible pleural line and no lung "
            f"markings at the {side} apex and lateral chest wall."
        )
        impression = f"{f['size']} {side} pneumothorax with partial lung collapse"
    elif label == "Obstructive":
        sentences.append("The lungs show hyperinflation with increased lucency.")
        sentences.append("The hemidiaphragms are low and flattened.")
        heart = "The heart is narrow and vertically elongated."
        impression = "hyperinflation in keeping with obstructive airways disease"
    elif label == "Degenerative_Infectious":
        sentences.append("There is bilateral upper zone reticulonodular change with small nodules.")
        impression = "bilateral upper zone reticulonodular change"
    elif label == "Mediastinal_Changes":
        sentences.append("The lungs are clear.")
        heart = {
            "cardiomegaly": "The cardiac silhouette is enlarged, consistent with cardiomegaly.",
            "mediastinal widening": "There is mediastinal widening of the superior mediastinum.",
            "both": "There is mediastinal widening and the cardiac silhouette is enlarged, "
            "consistent with cardiomegaly.",
        }[f["sign"]]
        impression = {"both": "mediastinal widening and cardiomegaly"}.get(f["sign"], f["sign"])
    elif label == "Chest_Changes":
        sentences.append(
            f"There is {side} volume loss with a smaller {side} hemithorax and elevation of the "
            f"{side} hemidiaphragm."
        )
        heart = f"The mediastinum and trachea are shifted to the {side}."
        impression = f"{side} volume loss with mediastinal shift"
    sentences += [heart, "The visualised bones are intact.", f"Impression: {impression}."]
    return " ".join(sentences)


def describe_quality(findings: Mapping[str, Any]) -> str:
    """1-2 sentences on exposure, position and rotation only (no class, no disease sign)."""
    expo = {"adequate": "Exposure is adequate.", "underexposed": "The film is underexposed.",
            "overexposed": "The film is overexposed."}[str(findings["exposure"])]  # fmt: skip
    rot = round(abs(float(findings["rotation_deg"])))
    pos = str(findings["position"])
    where = "centred" if pos == "centred" else f"{pos} on the film"
    turn = (
        "no significant rotation" if rot < 1 else f"about {rot} degree{'s' * (rot > 1)} of rotation"
    )
    return f"{expo} The patient is {where} with {turn}."


def describe_anatomy(f: Mapping[str, Any]) -> str:
    """Free-text description of what is drawn (a phantom's findings), free of class names."""
    side, sign = f.get("side"), f.get("sign")
    parts = [f"Both lungs appear {f['lung_size']}."]
    if sign == "volume loss":
        parts = [f"The {side} lung is much smaller than the other lung."]
    heart = f"The central heart and mediastinal shadow spans about {f['ctr_pct']}% of chest width"
    if sign == "volume loss":
        heart += f" and is displaced towards the {side}"
    parts.append(heart + ".")
    parts.append(f"The diaphragm domes are {f['diaphragm']}.")
    parts.append({
        "none": "No focal bright or dark area is drawn over the lungs.",
        "consolidation": f"A large bright blotchy area covers the {side} {f.get('zone')} lung.",
        "effusion": f"A uniform bright area with a curved upper edge fills the lower {side} chest.",
        "pneumothorax": f"A very dark band without lung markings lines the top and outer edge of "
        f"the {side} chest, bounded by a thin bright line around a shrunken lung.",
        "hyperinflation": "The lungs look darker than usual with sparse markings.",
        "reticulonodular": "Many small bright dots and short lines lie in both upper lungs.",
        "cardiomegaly": "No focal bright or dark area is drawn over the lungs.",
        "mediastinal widening": "The upper central shadow above the heart is broad.",
        "both": "The upper central shadow above the heart is broad.",
        "volume loss": f"The trachea is displaced towards the {side}.",
    }[str(sign)])  # fmt: skip
    return " ".join(parts)
