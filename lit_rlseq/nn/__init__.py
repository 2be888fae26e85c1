from lit_rlseq.nn.txt2pi import EncoderOutput, Txt2PiConfig, Txt2PiEncoder, Txt2PiPolicy

__all__ = ["EncoderOutput", "Txt2PiConfig", "Txt2PiEncoder", "Txt2PiPolicy"]
