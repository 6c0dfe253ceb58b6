"""cliffjax core: objectives, models, sampling, tasks, training, distributed.

Data flows one way: tasks make prompts -> sampling makes rollouts -> tasks score them ->
objectives turn log-probs, masks and advantages into a loss -> training updates state.
Nothing in ``core`` imports ``experiments`` or ``conf``.
"""
