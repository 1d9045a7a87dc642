from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "annotation_web.training"
    label = "training"

    def ready(self) -> None:
        # The job kinds of the ML loop (jobs.kinds: the one place a kind is declared).
        from annotation_web.jobs.kinds import register
        from annotation_web.training import services

        register(services.GENERATE, runner=services.generation_run, label="Generate candidates and pairs")
        register(services.TRAIN_REWARD, runner=services.reward_training_run, label="Train a reward model")
        register(services.TRAIN_RL, runner=services.rl_training_run, label="RL fine-tune a restorer")
        register(
            services.TRAIN_RESTORER,
            runner=services.restorer_training_run,
            label="Train a restorer (supervised)",
        )
