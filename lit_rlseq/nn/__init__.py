from lit_rlseq.nn.gpt import GPT, GPTConfig, KVCache
from lit_rlseq.nn.impala_cnn import ImpalaCNN, ImpalaCNNConfig
from lit_rlseq.nn.txt2pi import EncoderOutput, Txt2PiConfig, Txt2PiEncoder, Txt2PiPolicy

__all__ = [
    "GPT",
    "GPTConfig",
    "KVCache",
    "ImpalaCNN",
    "ImpalaCNNConfig",
    "EncoderOutput",
    "Txt2PiConfig",
    "Txt2PiEncoder",
    "Txt2PiPolicy",
]
