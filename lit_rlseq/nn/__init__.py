from lit_rlseq.nn.distributions import ActionDistribution, Categorical, DiagGaussian
from lit_rlseq.nn.gpt import GPT, GPTConfig, KVCache
from lit_rlseq.nn.impala_cnn import ImpalaCNN, ImpalaCNNConfig
from lit_rlseq.nn.mlp_actor_critic import MLPActorCritic, MLPActorCriticConfig
from lit_rlseq.nn.normalize import ObservationNormalizer, RewardScaler, RunningMeanStd
from lit_rlseq.nn.txt2pi import EncoderOutput, Txt2PiConfig, Txt2PiEncoder, Txt2PiPolicy

__all__ = [
    "ActionDistribution", "Categorical", "DiagGaussian", "GPT", "GPTConfig", "KVCache", "ImpalaCNN",
    "ImpalaCNNConfig", "MLPActorCritic", "MLPActorCriticConfig", "ObservationNormalizer", "RewardScaler",
    "RunningMeanStd", "EncoderOutput", "Txt2PiConfig", "Txt2PiEncoder", "Txt2PiPolicy",
]
