"""Faces: detect every face, train named models from one folder per person, recognise with an honest
``unknown``, and group unlabelled faces into people. See docs/ARCHITECTURE.md (Faces)."""

from lookalike.faces.cluster import FaceClusterReport, chinese_whispers, cluster_faces, name_cluster, write_links
from lookalike.faces.detect import DetectedFace, detect, get_detector
from lookalike.faces.embed import FaceEmbedder, load_face_embedder
from lookalike.faces.recognize import UNKNOWN, RecognizeResult, WhoReport, calibrate, recognize, who
from lookalike.faces.scan import PhotoFaces, scan_image, scan_paths
from lookalike.faces.store import (
    FaceModel,
    active_face_model,
    face_model_info,
    list_face_models,
    remove_face_model,
    use_face_model,
)
from lookalike.faces.train import TrainReport, add_examples, train

__all__ = [
    "UNKNOWN",
    "DetectedFace",
    "FaceClusterReport",
    "FaceEmbedder",
    "FaceModel",
    "PhotoFaces",
    "RecognizeResult",
    "TrainReport",
    "WhoReport",
    "active_face_model",
    "add_examples",
    "calibrate",
    "chinese_whispers",
    "cluster_faces",
    "detect",
    "face_model_info",
    "get_detector",
    "list_face_models",
    "load_face_embedder",
    "name_cluster",
    "recognize",
    "remove_face_model",
    "scan_image",
    "scan_paths",
    "train",
    "use_face_model",
    "who",
    "write_links",
]
