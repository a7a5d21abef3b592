"""Real faces: the MTCNN detector (our P-Net / R-Net / O-Net, the published weights) and alignment."""

from cnnlab.models.face.align import align_face, similarity_transform
from cnnlab.models.face.detect import MTCNN, FaceDetection, MTCNNConfig
from cnnlab.models.face.mtcnn import ONet, PNet, RNet, load_mtcnn_nets

__all__ = ["MTCNN", "MTCNNConfig", "FaceDetection", "PNet", "RNet", "ONet", "load_mtcnn_nets", "align_face",
           "similarity_transform"]
