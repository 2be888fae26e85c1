"""lit_rlseq: five sequence-model RL systems on one rollout store and one set of Lightning RL loops.

Layers, lowest first (a module imports only from layers below it):
    errors           user-facing error types
    rl, nn           pure math and plain nn.Modules
    rollouts, envs   the HDF5 rollout store and environments (no models)
    loops            collectors, online DataModules, evaluation, the IMPALA learner
    ldd, ...         one folder per system
    cli              the `lit-rlseq` / `lightning` command
"""

__version__ = "0.1.0"
