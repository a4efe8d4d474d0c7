"""Verifiers turn (response, prompt record) into a reward in [0, 1]; see docs/verifier.md."""

from gvmlit.verifiers.arithmetic import ArithmeticVerifier
from gvmlit.verifiers.base import Verifier
from gvmlit.verifiers.extraction import ExtractionPolicy, extract_answer
from gvmlit.verifiers.math import MathVerifier, prepare_gold

__all__ = ["ArithmeticVerifier", "ExtractionPolicy", "MathVerifier", "Verifier", "extract_answer", "prepare_gold"]
