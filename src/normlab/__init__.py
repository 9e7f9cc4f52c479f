"""normlab: the library behind the normlab book on normalization in ConvNets."""
__version__ = "0.1.0"
