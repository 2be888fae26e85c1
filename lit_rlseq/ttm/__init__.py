"""TTM: a causal LM policy for text games, trained on annotated trajectories (issue 9; docs/ttm.md).

    envs (lit_rlseq.envs.text) -> play (agents write trajectories into the rollout store)
        -> write_finetune (prompt/completion JSONL) -> fine-tune the LM (lm.TextLM) -> play as the student

Modules: ``trajectory`` (trajectories, automatic annotations, store layout), ``formats`` (fine-tune formats),
``agents`` (human, walkthrough, random), ``play`` (the play stage), ``write_finetune``, ``lm`` (tokenizer,
DataModule, the LM and the student). Nothing is imported here, so the pure parts need no Lightning.
"""
