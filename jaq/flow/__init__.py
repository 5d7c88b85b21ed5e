"""The parts of ``jaq flow`` (:mod:`jaq.commands.flow`): :mod:`~jaq.flow.record` (step order, RUN/flow.json),
:mod:`~jaq.flow.background` (child processes with a budget), :mod:`~jaq.flow.steps` (the steps)."""
