"""Canonical class labels of the phantom8 benchmark and the Kaggle 9-class source set."""

PHANTOM8_CLASSES: tuple[str, ...] = (
    "Normal",
    "Inflammatory_Pneumonia",
    "Higher_Density",
    "Lower_Density",
    "Obstructive",
    "Degenerative_Infectious",
    "Mediastinal_Changes",
    "Chest_Changes",
)

# The source set's 9th class; excluded by default by importers.
ENCAPSULATED = "Encapsulated_Lesions"
ALL_CLASSES: tuple[str, ...] = PHANTOM8_CLASSES + (ENCAPSULATED,)
