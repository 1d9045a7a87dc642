from django.apps import AppConfig


class LoopConfig(AppConfig):
    name = "annotation_web.loop"
    label = "loop"

    def ready(self) -> None:
        # The loop owns one job kind: a candidate restorer against the one in use, on the held-out inputs.
        from annotation_web.jobs.kinds import TRAIN_QUEUE, register
        from annotation_web.loop import evaluation

        register(
            evaluation.EVALUATE,
            runner=evaluation.evaluation_run,
            label="Evaluate a candidate restorer",
            queue=TRAIN_QUEUE,
            soft_time_limit=6 * 3600.0,
            time_limit=7 * 3600.0,
        )
