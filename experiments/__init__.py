"""The Hydra apps of cliffjax: the main training job, policy-cliff sweeps, their report and the
benchmarks (``cliffjax-train``, ``cliffjax-sweep``, ``cliffjax-report``, ``make bench``)."""
