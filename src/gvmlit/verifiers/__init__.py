"""Verifiers turn (response, reference answer) into a reward in [0, 1]."""

from gvmlit.verifiers.arithmetic import ArithmeticVerifier
from gvmlit.verifiers.base import Verifier
from gvmlit.verifiers.math import MathVerifier, extract_answer

__all__ = ["ArithmeticVerifier", "MathVerifier", "Verifier", "extract_answer"]
