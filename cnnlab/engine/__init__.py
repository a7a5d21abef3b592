"""Training engine: config, optimizers and schedules, checkpoints, logging, the task-agnostic trainer."""
