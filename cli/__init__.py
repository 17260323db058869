"""The ``carbonflow`` command: the composition root wiring the core, services and simulators."""
