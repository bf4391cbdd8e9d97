"""Training: config, recipes (sonar-finetune, t5-bridge, scratch), the trainer, evaluation and tuning."""
