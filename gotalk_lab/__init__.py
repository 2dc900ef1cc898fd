"""gotalk_lab: learn and experiment with the Gotalk protocol in Jupyter."""
from .errors import EncodeError, GotalkError, ProtocolViolation
from .wire import *  # noqa
from .decoder import Decoder, decode, decode_all
