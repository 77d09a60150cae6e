"""LaCT (large-chunk test-time training) and baseline speech models: ASR (CTC) and
audio-token generation. models/ imports only kernels/ and third-party packages."""

from models.asr import LaCTASRModel
from models.baseline import BaselineASRTransformer, BaselineAudioTransformer
from models.block import LaCTAudioBlock
from models.config import LaCTAudioConfig
from models.decoding import ctc_greedy_decode, ctc_prefix_beam_search
from models.errors import LaCTErrorHandler, LaCTOutOfMemoryError
from models.factory import ASR_MODELS, GENERATION_MODELS, ModelFamily, build_model
from models.generator import LaCTAudioGenerator
from models.lact_layer import LaCTLayer
from models.parameters import count_parameters
from models.state import LaCTState

__all__ = [
    "LaCTAudioConfig", "build_model", "count_parameters", "ModelFamily", "ASR_MODELS", "GENERATION_MODELS",
    "LaCTASRModel", "LaCTAudioGenerator", "BaselineASRTransformer", "BaselineAudioTransformer",
    "LaCTAudioBlock", "LaCTLayer", "LaCTState", "LaCTErrorHandler", "LaCTOutOfMemoryError",
    "ctc_greedy_decode", "ctc_prefix_beam_search",
]
