"""cliffjax: reference JAX implementations of RL-for-LLM policy objectives, the models, sampler,
tasks and trainers they drive, and executable checks of reward->policy stability theory.

The library lives in ``cliffjax.objectives``, ``cliffjax.models``, ``cliffjax.sampling``,
``cliffjax.tasks``, ``cliffjax.training`` and ``cliffjax.distributed`` (the ``core/`` folder of the
repository). ``cliffjax.experiments`` holds the Hydra apps (train, policy-cliff sweeps, report,
benchmarks), ``cliffjax.theory_checks`` the theory checks and ``cliffjax.conf`` their configs.

Data flows one way: tasks make prompts -> sampling makes rollouts -> tasks score them ->
objectives turn log-probs, masks and advantages into a loss -> training updates state. The
library never imports ``cliffjax.experiments`` or ``cliffjax.conf``.
"""

__version__ = "0.1.0"
