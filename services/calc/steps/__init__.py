"""The steps of one site's calc cycle: intervals, carbon, indicators. Each takes a
:class:`~services.calc.context.StepContext`, writes in its transaction and returns what it did;
none commits, and none imports the engine."""
