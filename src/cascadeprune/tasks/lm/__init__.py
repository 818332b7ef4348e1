"""The causal-LM task: perplexity per text domain, next-token recovery, multi-domain calibration."""


def eval_workflow(model: str, task: str, split: str = "test") -> dict:
    """``cascadeprune eval`` of a causal LM: the perplexity per domain of the model in ``model`` on ``task``'s
    ``split`` (the task's own ``evaluate``), with the task spec."""
    from cascadeprune import load_model
    from cascadeprune.tasks import get_task

    lm = load_model(model)
    return get_task(task, lm, source=model).evaluate(lm, split) | {"task": task}
