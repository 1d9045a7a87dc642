from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "annotation_web.training"
    label = "training"

    def ready(self) -> None:
        # The job kinds of the ML loop (jobs.kinds: the one place a kind is declared).
        from annotation_web.jobs.kinds import TRAIN_QUEUE, register
        from annotation_web.training import services

        # All on the `train` queue (the GPU hosts'); the soft limits are far above a CPU run of the base
        # configs, the hard ones an hour later (a run that ignores its soft limit).
        hour = 3600.0
        register(
            services.GENERATE,
            runner=services.generation_run,
            label="Generate candidates and pairs",
            queue=TRAIN_QUEUE,
            soft_time_limit=6 * hour,
            time_limit=7 * hour,
        )
        register(
            services.TRAIN_REWARD,
            runner=services.reward_training_run,
            label="Train a reward model",
            queue=TRAIN_QUEUE,
            soft_time_limit=12 * hour,
            time_limit=13 * hour,
        )
        register(
            services.TRAIN_RL,
            runner=services.rl_training_run,
            label="RL fine-tune a restorer",
            queue=TRAIN_QUEUE,
            soft_time_limit=24 * hour,
            time_limit=25 * hour,
        )
        register(
            services.TRAIN_RESTORER,
            runner=services.restorer_training_run,
            label="Train a restorer (supervised)",
            queue=TRAIN_QUEUE,
            soft_time_limit=24 * hour,
            time_limit=25 * hour,
        )
