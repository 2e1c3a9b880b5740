"""Face models: one object per embedding model, holding everything its distances mean.

A face template is only comparable with templates of the model that made it, and every
number about distances (the greeting threshold's floor and ceiling, the margin, the 1:1 and
duplicate ceilings, the greeter's same-face distance, the prior false-match curve, the chart
axes) is a property of that model. So each model is one FaceModel, and nothing outside its
profile holds one of its distance constants.

    get("mobilefacenet")  the profile by name (the FACE_MODEL setting) or by id (stored data)
    DEFAULT               the name of the model a new registry starts on

An operator who has licensed another model adds one module like mobilefacenet.py (its file,
sha256, alignment, encoder and measured bounds) and names it here.
"""
from . import dlib_resnet, mobilefacenet
from .profile import Bounds, FaceModel, ModelFileError, UnknownModel

PROFILES = {m.name: m for m in (mobilefacenet.MODEL, dlib_resnet.MODEL)}
DEFAULT = mobilefacenet.MODEL.name

__all__ = ["Bounds", "FaceModel", "ModelFileError", "UnknownModel", "PROFILES", "DEFAULT", "get",
           "by_id", "names"]


def names():
    """The model names FACE_MODEL and `reencode --model` accept."""
    return tuple(PROFILES)


def get(name_or_id):
    """The profile called name_or_id (a FACE_MODEL name or a stored profile id).
    UnknownModel when this code holds no such model (a device older than its registry)."""
    if name_or_id in PROFILES:
        return PROFILES[name_or_id]
    return by_id(name_or_id)


def by_id(model_id):
    """The profile whose id is model_id; UnknownModel if none."""
    for model in PROFILES.values():
        if model.id == model_id:
            return model
    raise UnknownModel(model_id)
